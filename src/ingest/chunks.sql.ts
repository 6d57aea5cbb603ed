import { type Kysely, sql } from "kysely";
import pgvector from "pgvector";
import type { Database } from "../db/database.ts";
import type { Chunk } from "./chunking.ts";

export interface EmbeddedChunk extends Chunk {
  readonly embedding: readonly number[];
}

export interface ChunkOwner {
  readonly tenantId: string;
  readonly collectionId: string;
  readonly documentId: string;
  readonly version: number;
  readonly language: string;
  readonly metadata: unknown;
}

/**
 * Inserts a document's chunks and their BM25 postings in one statement. The postings come from the
 * tsvector the database computed for each chunk (the same lexemes a query is parsed into); a
 * chunk's BM25 length is the number of lexeme occurrences in it. Returns what the chunks add to the
 * collection's statistics.
 */
export async function insertChunksWithPostings(
  db: Kysely<Database>,
  owner: ChunkOwner,
  chunks: readonly EmbeddedChunk[],
): Promise<{ chunkCount: number; lexemeTotal: number }> {
  if (chunks.length === 0) return { chunkCount: 0, lexemeTotal: 0 };
  const { rows } = await sql<{ chunk_count: number; lexeme_total: string }>`
    WITH input AS (
      SELECT * FROM unnest(${chunks.map((_, i) => i)}::int[], ${chunks.map((c) => c.content)}::text[],
                           ${chunks.map((c) => JSON.stringify(c.headingPath))}::text[],
                           ${chunks.map((c) => c.charStart)}::int[], ${chunks.map((c) => c.charEnd)}::int[],
                           ${chunks.map((c) => c.tokenCount)}::int[], ${chunks.map((c) => pgvector.toSql(c.embedding))}::text[])
        AS t(ordinal, content, heading_json, char_start, char_end, token_count, embedding)
    ),
    inserted AS (
      INSERT INTO chunks (tenant_id, collection_id, document_id, document_version, ordinal, content, heading_path,
                          char_start, char_end, token_count, metadata, language, embedding)
      SELECT ${owner.tenantId}::uuid, ${owner.collectionId}::uuid, ${owner.documentId}::uuid, ${owner.version}::int,
             ordinal, content, ARRAY(SELECT jsonb_array_elements_text(heading_json::jsonb)),
             char_start, char_end, token_count, ${JSON.stringify(owner.metadata)}::jsonb, ${owner.language}::regconfig,
             embedding::vector
      FROM input
      RETURNING id, tsv
    ),
    postings AS (
      SELECT i.id, u.lexeme, coalesce(cardinality(u.positions), 1) AS tf
      FROM inserted i CROSS JOIN LATERAL unnest(i.tsv) AS u
    ),
    lengths AS (
      SELECT id, sum(tf)::int AS dl FROM postings GROUP BY id
    ),
    written AS (
      INSERT INTO chunk_terms (collection_id, term, chunk_id, tenant_id, tf, dl)
      SELECT ${owner.collectionId}::uuid, p.lexeme, p.id, ${owner.tenantId}::uuid, p.tf, l.dl
      FROM postings p JOIN lengths l USING (id)
    )
    SELECT (SELECT count(*) FROM inserted)::int AS chunk_count,
           (SELECT coalesce(sum(dl), 0) FROM lengths)::bigint AS lexeme_total
  `.execute(db);
  const row = rows[0];
  return { chunkCount: row?.chunk_count ?? 0, lexemeTotal: Number(row?.lexeme_total ?? 0) };
}

export async function cachedEmbeddings(
  db: Kysely<Database>,
  hashes: readonly Buffer[],
): Promise<Map<string, number[]>> {
  if (hashes.length === 0) return new Map();
  const rows = await db
    .selectFrom("embedding_cache")
    .select(["content_hash", sql<string>`embedding::text`.as("embedding")])
    .where("content_hash", "=", sql<Buffer>`any(${[...hashes]}::bytea[])`)
    .execute();
  return new Map(
    rows.map((r) => [r.content_hash.toString("hex"), pgvector.fromSql(r.embedding) as number[]]),
  );
}

export async function storeEmbeddings(
  db: Kysely<Database>,
  entries: readonly { hash: Buffer; embedding: readonly number[] }[],
): Promise<void> {
  if (entries.length === 0) return;
  await sql`
    INSERT INTO embedding_cache (content_hash, embedding)
    SELECT * FROM unnest(${entries.map((e) => e.hash)}::bytea[], ${entries.map((e) => pgvector.toSql(e.embedding))}::vector[])
    ON CONFLICT (content_hash) DO NOTHING
  `.execute(db);
}
