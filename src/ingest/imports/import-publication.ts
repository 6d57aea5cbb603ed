import type { Kysely } from "kysely";
import { adjustCollectionStats } from "../../collections/collections.repository.ts";
import type { Database } from "../../db/database.ts";
import type { Bm25Parameters } from "../../postings/bm25-weight.ts";
import { writePostingsOf } from "../../postings/postings.repository.ts";
import { deleteChunksOf } from "../chunks.repository.ts";
import {
  appendStagedChunks,
  attachAsOwnPartition,
  dropUploadedLines,
  type ImportTarget,
  lockCollectionForPlacement,
  lockReplacedDocuments,
  repointStagedChunks,
  setImportStatus,
  stagedChunks,
  withoutStatementTimeout,
  writeStagedDocuments,
} from "./imports.repository.ts";

/**
 * Makes an import visible, all at once, in the caller's transaction: the staged documents replace or
 * join the stored ones (replaced documents' chunks deleted as a delete does), the staged chunks'
 * postings are written as compacted blocks, the statistics move by the difference, and the staged
 * chunks join the collection — as its own partition, with the collection's chunks from the shared
 * partition moved in, or appended to the partition it has.
 */
export async function publishImport(
  tx: Kysely<Database>,
  target: { importId: string; tenantId: string; collectionId: string; placement: ImportTarget; staging: string },
  bm25: Bm25Parameters,
): Promise<void> {
  const { importId, collectionId, tenantId } = target;
  await withoutStatementTimeout(tx);
  await lockCollectionForPlacement(tx, collectionId);
  const replaced = await lockReplacedDocuments(tx, target);
  if (replaced.length > 0) {
    await deleteChunksOf(
      tx,
      replaced.map((r) => r.id),
    );
  }
  const added = await writeStagedDocuments(tx, target);
  await repointStagedChunks(tx, target);
  await writePostingsOf(tx, { collectionId, tenantId, ...bm25 }, stagedChunks(target.staging));
  await adjustCollectionStats(
    tx,
    collectionId,
    tenantId,
    added.chunks - replaced.reduce((n, r) => n + r.chunkCount, 0),
    added.length - replaced.reduce((n, r) => n + r.lexemeTotal, 0),
  );
  if (target.placement === "own_partition") await attachAsOwnPartition(tx, target);
  else await appendStagedChunks(tx, target);
  await dropUploadedLines(tx, importId);
  await setImportStatus(tx, importId, "completed");
}
