import type { Router } from "../db/router.ts";
import { AppError } from "../errors.ts";
import type { EmbeddingClient } from "../inference/embedding-client.ts";
import { pagesSpanned } from "../parsing/parsed-document.ts";
import type { ChunkingOptions } from "../text/chunking.ts";
import { cachedHashes, type EmbeddedChunk, type LocatedChunk, storeEmbeddings } from "./chunks.repository.ts";
import { contentHash } from "../text/content.ts";
import type { TextPool } from "../text/text-pool.ts";
import type { DocumentTexts } from "./document-text.ts";
import type { JobQueue } from "../jobs/queue.ts";
import type { Tracing } from "../tracing.ts";
import type { Logger } from "../logger.ts";
import type { Registry } from "../metrics.ts";

/** What chunks, embeds and writes documents from a job queue: the ingestion worker and the import runner. */
export interface DocumentJobDeps {
  readonly queue: JobQueue;
  readonly router: Router;
  readonly embeddings: EmbeddingClient;
  readonly textPool: TextPool;
  /** The text of a stored document, a file's parsed. */
  readonly texts: DocumentTexts;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly tracing?: Tracing;
}

/**
 * Chunks a document's text off the event loop, refusing (for good) one that makes too many chunks;
 * with `pageStarts`, each chunk gets the pages it spans.
 */
export async function chunkWithinLimit(
  textPool: TextPool,
  document: { readonly text: string; readonly pageStarts?: readonly number[] | null },
  chunking: ChunkingOptions,
  maxChunksPerDocument: number,
): Promise<LocatedChunk[]> {
  const chunks = await textPool.chunk(document.text, chunking);
  if (chunks.length > maxChunksPerDocument) {
    throw new AppError(
      "unprocessable",
      `the document makes ${chunks.length} chunks, more than the limit of ${maxChunksPerDocument} (PGRAG_MAX_CHUNKS_PER_DOCUMENT): split it or raise the collection's chunking.max_tokens`,
    );
  }
  const pageStarts = document.pageStarts ?? [];
  return chunks.map((chunk) => ({ ...chunk, pages: pagesSpanned(pageStarts, chunk.charStart, chunk.charEnd) }));
}

/**
 * Embeds the chunks of many documents: each distinct text once, and only texts not in the embedding
 * cache, which this fills (committed before the chunks are written, so a failed write never costs
 * the backend's work again). Returns each document's chunks with the cache key of their vectors.
 * Ingestion is background work for the embedding backend: `tenantId` takes its turn among the tenants
 * whose ingestion, imports or batches wait, after every query being answered.
 */
export async function embedChunks<K>(
  router: Router,
  embeddings: EmbeddingClient,
  documents: ReadonlyMap<K, readonly LocatedChunk[]>,
  tenantId: string,
): Promise<Map<K, EmbeddedChunk[]>> {
  // Each distinct text is hashed once; the hex form keys the look-up.
  const hashOfText = new Map<string, Buffer>();
  for (const chunks of documents.values()) {
    for (const chunk of chunks) {
      if (!hashOfText.has(chunk.content)) hashOfText.set(chunk.content, contentHash(chunk.content));
    }
  }
  const { value: cached } = await router.read({ primary: true }, (db) => cachedHashes(db, [...hashOfText.values()]));
  const missing = [...hashOfText].filter(([, hash]) => !cached.has(hash.toString("hex")));
  if (missing.length > 0) {
    const vectors = await embeddings.embed(
      missing.map(([text]) => text),
      { tenantId, priority: "batch" },
    );
    await router.write({}, (tx) =>
      storeEmbeddings(
        tx,
        missing.map(([, hash], i) => ({ hash, embedding: vectors[i] as number[] })),
      ),
    );
  }
  return new Map(
    [...documents].map(([owner, chunks]) => [
      owner,
      chunks.map((chunk) => ({ ...chunk, contentHash: hashOfText.get(chunk.content) as Buffer })),
    ]),
  );
}
