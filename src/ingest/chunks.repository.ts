import { type Kysely, sql } from "kysely";
import { lexemeCount } from "../postings/bm25-weight.ts";
import { gapInBlock, PACKED_BLOCK_COLUMNS } from "../postings/postings-codec.ts";
import { textArrayLiteral } from "../db/array-literal.ts";
import type { Database } from "../db/database.ts";
import type { Chunk } from "../text/chunking.ts";
import { chunkLocation, LOCATION_COLUMNS } from "../retrieval/chunk-location.ts";

/**
 * A chunk whose embedding is in embedding_cache under `contentHash`: the write reads it there, so a
 * vector crosses the wire once (to the cache), not again with its chunk.
 */
export interface EmbeddedChunk extends LocatedChunk {
  readonly contentHash: Buffer;
}

/** A chunk with the pages (slides) it spans, for documents with pages. */
export interface LocatedChunk extends Chunk {
  readonly pages?: { readonly first: number; readonly last: number } | null;
}

export interface ChunkOwner {
  readonly tenantId: string;
  readonly collectionId: string;
  readonly documentId: string;
  readonly version: number;
  readonly language: string;
  readonly metadata: unknown;
  /** The document's access list, copied onto each chunk. */
  readonly access: readonly string[];
}

export interface DocumentChunks {
  readonly owner: ChunkOwner;
  readonly chunks: readonly EmbeddedChunk[];
}

export interface AddedChunks {
  readonly chunkCount: number;
  readonly lexemeTotal: number;
}

/**
 * Removes the chunks of these documents. Their postings stay in their blocks until compaction (search
 * drops ids that are no longer chunks); what they counted in each term's document frequency is
 * recorded in bm25_deletions in this same transaction, so the statistics stay exact.
 */
export async function deleteChunksOf(tx: Kysely<Database>, documentIds: readonly string[]): Promise<void> {
  await sql`
    WITH gone AS (
      DELETE FROM chunks WHERE document_id = any(${[...documentIds]}::uuid[])
      RETURNING collection_id, tenant_id, tsv
    )
    INSERT INTO bm25_deletions (collection_id, term, tenant_id, postings)
    SELECT g.collection_id, u.lexeme, g.tenant_id, count(*)::int
    FROM gone g CROSS JOIN LATERAL unnest(g.tsv) AS u
    GROUP BY g.collection_id, u.lexeme, g.tenant_id
  `.execute(tx);
}

/**
 * Rows per INSERT statement. Building one statement's parameters (vectors as text, text arrays) is
 * synchronous work on the event loop; a document of thousands of chunks goes in slices of this many
 * (same transaction), so no single statement blocks the loop for long. A normal batch is one slice.
 */
const ROWS_PER_STATEMENT = 1_000;

/**
 * Inserts the chunks of many documents and their BM25 postings (a block per term of the slice), one statement per slice of
 * ROWS_PER_STATEMENT rows: a worker's batch usually costs one round trip, not several per document.
 * The postings come from the tsvector the database computed for each chunk (the same lexemes a
 * query is parsed into); a chunk's BM25 length is the number of lexeme occurrences in it. Returns,
 * per document id, what its chunks add to the collection's statistics (documents without chunks add
 * nothing and are absent).
 */
export async function insertChunksWithPostings(
  db: Kysely<Database>,
  documents: readonly DocumentChunks[],
): Promise<Map<string, AddedChunks>> {
  return inSlices(documents, (rows) => insertSlice(db, documents, rows));
}

/** Writes the documents' chunks ROWS_PER_STATEMENT at a time; sums what each slice added per document. */
async function inSlices(
  documents: readonly DocumentChunks[],
  writeSlice: (rows: readonly ChunkRow[]) => Promise<Map<string, AddedChunks>>,
): Promise<Map<string, AddedChunks>> {
  const rows = documents.flatMap((doc, docIndex) => doc.chunks.map((chunk, ordinal) => ({ docIndex, ordinal, chunk })));
  const totals = new Map<string, AddedChunks>();
  for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
    const sliceRows = rows.slice(start, start + ROWS_PER_STATEMENT);
    const slice = await writeSlice(sliceRows);
    const written = [...slice.values()].reduce((sum, added) => sum + added.chunkCount, 0);
    if (written !== sliceRows.length) {
      // Rolls the caller's transaction back; a retry embeds the missing texts again.
      throw new Error(
        `${sliceRows.length - written} of ${sliceRows.length} chunks have no embedding in embedding_cache any more`,
      );
    }
    for (const [documentId, added] of slice) {
      const before = totals.get(documentId) ?? { chunkCount: 0, lexemeTotal: 0 };
      totals.set(documentId, {
        chunkCount: before.chunkCount + added.chunkCount,
        lexemeTotal: before.lexemeTotal + added.lexemeTotal,
      });
    }
  }
  return totals;
}

interface ChunkRow {
  readonly docIndex: number;
  readonly ordinal: number;
  readonly chunk: EmbeddedChunk;
}

/**
 * The CTEs `docs` and `input` of a slice, and the chunk rows they make (`chunkRows`, in the column
 * order of CHUNK_COLUMNS): shared by the ordinary write and an import's staging table.
 */
function chunkRowsOf(documents: readonly DocumentChunks[], rows: readonly ChunkRow[]) {
  const owners = documents.map((d) => d.owner);
  const ctes = sql`
    docs AS (
      SELECT * FROM unnest(${owners.map((o) => o.documentId)}::uuid[], ${owners.map((o) => o.tenantId)}::uuid[],
                           ${owners.map((o) => o.collectionId)}::uuid[], ${owners.map((o) => o.version)}::int[],
                           ${owners.map((o) => JSON.stringify(o.metadata))}::jsonb[], ${owners.map((o) => o.language)}::regconfig[],
                           ${owners.map((o) => textArrayLiteral(o.access))}::text[])
        WITH ORDINALITY AS d(document_id, tenant_id, collection_id, version, metadata, language, access, doc_index)
    ),
    input AS (
      SELECT * FROM unnest(${rows.map((r) => r.docIndex + 1)}::int[], ${rows.map((r) => r.ordinal)}::int[],
                           ${rows.map((r) => r.chunk.content)}::text[], ${rows.map((r) => JSON.stringify(r.chunk.headingPath))}::text[],
                           ${rows.map((r) => r.chunk.charStart)}::int[], ${rows.map((r) => r.chunk.charEnd)}::int[],
                           ${rows.map((r) => r.chunk.tokenCount)}::int[], ${rows.map((r) => r.chunk.contentHash)}::bytea[],
                           ${rows.map((r) => r.chunk.pages?.first ?? null)}::int[], ${rows.map((r) => r.chunk.pages?.last ?? null)}::int[])
        AS t(doc_index, ordinal, content, heading_json, char_start, char_end, token_count, content_hash, page_start, page_end)
    )`;
  // An inner join: a chunk whose embedding is not in the cache makes no row, which the caller
  // detects by counting (see inSlices) rather than writing the chunk without its vector.
  const chunkRows = sql`
    SELECT d.tenant_id, d.collection_id, d.document_id, d.version,
           t.ordinal, t.content, ARRAY(SELECT jsonb_array_elements_text(t.heading_json::jsonb)),
           t.char_start, t.char_end, t.page_start, t.page_end, t.token_count, d.metadata, d.language, d.access::text[],
           e.embedding
    FROM input t JOIN docs d USING (doc_index) JOIN embedding_cache e USING (content_hash)`;
  return { ctes, chunkRows };
}

/** Every column of a chunk but its id and the generated and defaulted ones. */
export const CHUNK_COLUMNS =
  sql.raw(`tenant_id, collection_id, document_id, document_version, ordinal, content, heading_path,
                          char_start, char_end, page_start, page_end, token_count, metadata, language, access, embedding`);

async function insertSlice(
  db: Kysely<Database>,
  documents: readonly DocumentChunks[],
  rows: readonly ChunkRow[],
): Promise<Map<string, AddedChunks>> {
  const { ctes, chunkRows } = chunkRowsOf(documents, rows);
  const { rows: added } = await sql<{ document_id: string; chunk_count: number; lexeme_total: string }>`
    WITH ${ctes},
    inserted AS (
      INSERT INTO chunks (${CHUNK_COLUMNS}) ${chunkRows}
      RETURNING id, document_id, collection_id, tenant_id, tsv
    ),
    postings AS (
      SELECT i.id, i.collection_id, i.tenant_id, u.lexeme, ${lexemeCount("u")} AS tf
      FROM inserted i CROSS JOIN LATERAL unnest(i.tsv) AS u
    ),
    lengths AS (
      SELECT id, sum(tf)::int AS dl FROM postings GROUP BY id
    ),
    -- One block per term of this statement; compaction merges and sorts them later.
    written AS (
      INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, first_chunk, last_chunk, data)
      SELECT collection_id, lexeme, tenant_id, ${PACKED_BLOCK_COLUMNS}
      FROM (
        SELECT p.collection_id, p.lexeme, p.tenant_id, p.id AS chunk_id, p.tf, l.dl,
               ${gapInBlock(sql`p.id`, sql`p.collection_id, p.lexeme`)} AS gap
        FROM postings p JOIN lengths l USING (id)
      ) AS gapped
      GROUP BY collection_id, lexeme, tenant_id
    )
    SELECT i.document_id, count(*)::int AS chunk_count, coalesce(sum(l.dl), 0)::bigint AS lexeme_total
    FROM inserted i LEFT JOIN lengths l USING (id)
    GROUP BY i.document_id
  `.execute(db);
  return new Map(added.map((r) => [r.document_id, { chunkCount: r.chunk_count, lexemeTotal: Number(r.lexeme_total) }]));
}

/**
 * Inserts chunks into an import's staging table (see migration 13): no postings and no index to
 * maintain yet; the import writes the postings and builds the indexes once, at its end. Returns
 * what each document's chunks will add to the collection's statistics, as insertChunksWithPostings does.
 */
export async function insertStagedChunks(
  db: Kysely<Database>,
  staging: string,
  documents: readonly DocumentChunks[],
): Promise<Map<string, AddedChunks>> {
  return inSlices(documents, async (rows) => {
    const { ctes, chunkRows } = chunkRowsOf(documents, rows);
    const { rows: added } = await sql<{ document_id: string; chunk_count: number; lexeme_total: string }>`
      WITH ${ctes},
      inserted AS (
        INSERT INTO ${sql.table(staging)} (${CHUNK_COLUMNS}) ${chunkRows}
        RETURNING document_id, (SELECT coalesce(sum(${lexemeCount("u")}), 0) FROM unnest(tsv) AS u) AS dl
      )
      SELECT document_id, count(*)::int AS chunk_count, sum(dl)::bigint AS lexeme_total FROM inserted GROUP BY document_id
    `.execute(db);
    return new Map(
      added.map((r) => [r.document_id, { chunkCount: r.chunk_count, lexemeTotal: Number(r.lexeme_total) }]),
    );
  });
}

/** Which of these content hashes have an embedding in the cache (hex). */
export async function cachedHashes(db: Kysely<Database>, hashes: readonly Buffer[]): Promise<Set<string>> {
  if (hashes.length === 0) return new Set();
  const rows = await db
    .selectFrom("embedding_cache")
    .select("content_hash")
    .where("content_hash", "=", sql<Buffer>`any(${[...hashes]}::bytea[])`)
    .execute();
  return new Set(rows.map((r) => r.content_hash.toString("hex")));
}

/** Rows per cache insert: two parameters each, within PostgreSQL's 65,535. */
const CACHE_ROWS_PER_STATEMENT = 10_000;

/**
 * Stores embeddings under their content hashes. Vectors go in pgvector's binary form: a Buffer
 * parameter is sent as binary by pg, so a vector costs 4 bytes a dimension on the wire and no
 * number formatting or parsing on either side (its text form is ~20 characters a dimension).
 */
export async function storeEmbeddings(
  db: Kysely<Database>,
  entries: readonly { hash: Buffer; embedding: readonly number[] }[],
): Promise<void> {
  for (let start = 0; start < entries.length; start += CACHE_ROWS_PER_STATEMENT) {
    const rows = entries
      .slice(start, start + CACHE_ROWS_PER_STATEMENT)
      .map((e) => sql`(${e.hash}::bytea, ${vectorBinary(e.embedding)}::vector)`);
    await sql`
      INSERT INTO embedding_cache (content_hash, embedding) VALUES ${sql.join(rows)}
      ON CONFLICT (content_hash) DO NOTHING
    `.execute(db);
  }
}

/** pgvector's binary input (vector_recv): dimensions and a reserved field as int16, then float4s, big-endian. */
function vectorBinary(embedding: readonly number[]): Buffer {
  const buffer = Buffer.allocUnsafe(4 + 4 * embedding.length);
  buffer.writeUInt16BE(embedding.length, 0);
  buffer.writeUInt16BE(0, 2);
  embedding.forEach((value, i) => buffer.writeFloatBE(value, 4 + 4 * i));
  return buffer;
}

/** A document's chunks in their order, `limit` after the ordinal `after` (keyset paging), with their locations. */
export async function listDocumentChunks(
  db: Kysely<Database>,
  where: { tenantId: string; documentId: string; after: number; limit: number },
) {
  const rows = await db
    .selectFrom("chunks as c")
    .innerJoin("documents as d", "d.id", "c.document_id")
    .select([...LOCATION_COLUMNS, "c.id", "c.ordinal", "c.content", "c.char_start", "c.char_end", "c.token_count"])
    .where("c.tenant_id", "=", where.tenantId)
    .where("c.document_id", "=", where.documentId)
    .where("c.ordinal", ">", where.after)
    .orderBy("c.ordinal")
    .limit(where.limit)
    .execute();
  return rows.map((r) => ({
    id: String(r.id),
    ordinal: r.ordinal,
    content: r.content,
    location: chunkLocation(r),
    charStart: r.char_start,
    charEnd: r.char_end,
    tokenCount: r.token_count,
  }));
}
