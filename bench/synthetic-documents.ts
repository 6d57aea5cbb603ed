import { sql } from "kysely";
import type { App } from "../src/app.ts";
import { adjustCollectionStats } from "../src/collections/collections.repository.ts";
import { textArrayLiteral } from "../src/db/array-literal.ts";
import { insertChunksWithPostings, storeEmbeddings } from "../src/ingest/chunks.repository.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { ensureTenant } from "../src/tenancy/api-keys.ts";
import type { Principal } from "../src/tenancy/principal.ts";
import { DEFAULT_CHUNKING } from "../src/text/chunking.ts";
import { contentHash } from "../src/text/content.ts";

/** A benchmark's own tenant (`bench-<kind>-<time>`, deleted by name after) with one collection `kind`. */
export async function benchCollection(
  app: App,
  kind: string,
): Promise<{ tenantId: string; collectionId: string; owner: Principal }> {
  const tenantId = await adminTransaction(app, (tx) => ensureTenant(tx, `bench-${kind}-${Date.now()}`));
  const owner: Principal = { tenantId, keyId: "bench", scopes: ["read", "write"], principals: null, owner: null };
  await app.ingest.createCollection(owner, { name: kind, language: "english", chunking: DEFAULT_CHUNKING });
  const { value: collectionId } = await app.router.read(
    { tenantId, primary: true },
    async (db) =>
      (await db.selectFrom("collections").select("id").where("name", "=", kind).executeTakeFirstOrThrow()).id,
  );
  return { tenantId, collectionId, owner };
}

/** A one-chunk document a benchmark writes: its id, text, vector and access list. */
export interface SyntheticDocument {
  readonly externalId: string;
  readonly text: string;
  readonly vector: readonly number[];
  readonly access: readonly string[];
}

/**
 * Writes ready one-chunk documents in one transaction through the platform's own repository
 * functions — chunks, embeddings, postings and statistics as ingestion leaves them — without parsing
 * or asking a backend for embeddings: the quick way to a collection of 100k chunks with chosen
 * vectors and access lists.
 */
export async function writeSyntheticDocuments(
  app: App,
  target: { readonly tenantId: string; readonly collectionId: string },
  documents: readonly SyntheticDocument[],
): Promise<void> {
  const { tenantId, collectionId } = target;
  const hashes = documents.map((d) => contentHash(`synthetic:${collectionId}:${d.externalId}`));
  await app.router.write({ tenantId }, async (tx) => {
    await storeEmbeddings(
      tx,
      documents.map((d, i) => ({ hash: hashes[i] as Buffer, embedding: [...d.vector] })),
    );
    const { rows: ids } = await sql<{ id: string }>`
      INSERT INTO documents (tenant_id, collection_id, external_id, content_type, content, content_hash, status, access)
      SELECT ${tenantId}::uuid, ${collectionId}::uuid, t.external_id, 'text/plain', t.text, '\\x00', 'ready', t.access::text[]
      FROM unnest(${documents.map((d) => d.externalId)}::text[], ${documents.map((d) => d.text)}::text[],
                  ${documents.map((d) => textArrayLiteral(d.access))}::text[]) WITH ORDINALITY AS t(external_id, text, access, n)
      ORDER BY t.n
      RETURNING id`.execute(tx);
    const added = await insertChunksWithPostings(
      tx,
      documents.map((d, i) => ({
        owner: {
          tenantId,
          collectionId,
          documentId: ids[i]?.id ?? "",
          version: 1,
          language: "english",
          metadata: {},
          access: d.access,
        },
        chunks: [
          {
            content: d.text,
            headingPath: [],
            charStart: 0,
            charEnd: d.text.length,
            tokenCount: 100,
            contentHash: hashes[i] as Buffer,
          },
        ],
      })),
    );
    const totals = [...added.values()];
    await adjustCollectionStats(
      tx,
      collectionId,
      tenantId,
      totals.length,
      totals.reduce((s, a) => s + a.lexemeTotal, 0),
    );
  });
}
