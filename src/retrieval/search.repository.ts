import { type Kysely, sql } from "kysely";
import pgvector from "pgvector";
import type { Database } from "../db/database.ts";
import { chunkConditions, type SearchFilter } from "./filters.ts";
import type { LegHit } from "./fusion.ts";

export interface SearchScope {
  readonly tenantId: string;
  readonly collectionIds: readonly string[];
  readonly language: string;
  /** Resolved from the caller's external document ids; null when not filtering by document. */
  readonly documentIds: readonly string[] | null;
  readonly filter: SearchFilter | undefined;
}

export interface Bm25Parameters {
  readonly k1: number;
  readonly b: number;
}

/** How many chunks the scope's filters leave, counting no further than `cap`. */
export async function countFilteredChunks(db: Kysely<Database>, scope: SearchScope, cap: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM (
      ${db
        .selectFrom("chunks as c")
        .select(sql`1`.as("one"))
        .where((eb) => chunkConditions(eb, scope, scope.filter))
        .limit(cap + 1)}
    ) AS capped
  `.execute(db);
  return rows[0]?.n ?? 0;
}

/** Chunks in the scope's collections, from the BM25 statistics (no scan). */
export async function collectionChunkCount(db: Kysely<Database>, collectionIds: readonly string[]): Promise<number> {
  const { rows } = await sql<{ n: string | null }>`
    SELECT sum(chunk_count) AS n FROM collection_stats WHERE collection_id = any(${[...collectionIds]}::uuid[])
  `.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/**
 * The HNSW search settings, transaction-local: the router sets them with the tenant when the read
 * starts (plain SET would leak to other clients under transaction pooling). Iterative scans
 * (pgvector ≥ 0.8) keep walking the graph until enough rows pass the filters; relaxed order is
 * restored to exact order by the outer sort in vectorSearchIndexed.
 */
export function hnswSettings(efSearch: number): Record<string, string> {
  return {
    "hnsw.ef_search": String(efSearch),
    "hnsw.iterative_scan": "relaxed_order",
    "hnsw.max_scan_tuples": "40000",
  };
}

/** Nearest chunks by cosine similarity through the HNSW index, in a read started with hnswSettings. */
export async function vectorSearchIndexed(
  tx: Kysely<Database>,
  scope: SearchScope,
  embedding: readonly number[],
  limit: number,
): Promise<LegHit[]> {
  const vector = pgvector.toSql(embedding);
  const { rows } = await sql<{ id: string; distance: number }>`
    WITH nearest AS MATERIALIZED (
      ${tx
        .selectFrom("chunks as c")
        .select(["c.id", sql<number>`c.embedding <=> ${vector}::vector`.as("distance")])
        .where((eb) => chunkConditions(eb, scope, scope.filter))
        .orderBy(sql`c.embedding <=> ${vector}::vector`)
        .limit(limit)}
    )
    SELECT id, distance FROM nearest ORDER BY distance, id
  `.execute(tx);
  return rows.map((r) => ({ chunkId: String(r.id), score: 1 - r.distance }));
}

/** Exact nearest chunks over the filtered set: for filters so selective that a graph walk is wasteful. */
export async function vectorSearchExact(
  db: Kysely<Database>,
  scope: SearchScope,
  embedding: readonly number[],
  limit: number,
): Promise<LegHit[]> {
  const vector = pgvector.toSql(embedding);
  // MATERIALIZED keeps the planner from pushing the ORDER BY into the HNSW index.
  const { rows } = await sql<{ id: string; distance: number }>`
    WITH candidates AS MATERIALIZED (
      ${db
        .selectFrom("chunks as c")
        .select(["c.id", "c.embedding"])
        .where((eb) => chunkConditions(eb, scope, scope.filter))}
    )
    SELECT id, embedding <=> ${vector}::vector AS distance FROM candidates
    WHERE embedding IS NOT NULL
    ORDER BY distance, id LIMIT ${limit}
  `.execute(db);
  return rows.map((r) => ({ chunkId: String(r.id), score: 1 - r.distance }));
}

/**
 * Okapi BM25 over the query's lexemes, OR-ed: reads only the postings of those lexemes (an
 * index-only scan of chunk_terms' primary key, which INCLUDEs tf, dl and tenant_id). Document frequency is the number of postings read;
 * N and the average length come from collection_stats. idf = ln(1 + (N − df + 0.5) / (df + 0.5)),
 * as in Lucene; a lexeme repeated in the query counts once per occurrence.
 */
export async function bm25Search(
  db: Kysely<Database>,
  scope: SearchScope,
  query: string,
  limit: number,
  params: Bm25Parameters,
): Promise<LegHit[]> {
  const filtered = scope.filter !== undefined || scope.documentIds !== null;
  const { rows } = await sql<{ chunk_id: string; score: number }>`
    WITH query_terms AS (
      SELECT lexeme AS term, coalesce(cardinality(positions), 1) AS qtf
      FROM unnest(to_tsvector(${scope.language}::regconfig, ${query}))
    ),
    -- Per-query constants, so the per-posting arithmetic is a few float8 operations:
    -- BM25 = Σ qtf · idf · (k1 + 1) · tf / (tf + k1·(1 − b) + k1·b/avgdl · dl)
    corpus AS (
      SELECT greatest(sum(chunk_count), 1)::float8 AS n,
             ${params.k1}::float8 * (1 - ${params.b}::float8) AS norm_fixed,
             ${params.k1}::float8 * ${params.b}::float8
               / (greatest(sum(total_length), 1)::float8 / greatest(sum(chunk_count), 1)::float8) AS norm_per_length
      FROM collection_stats WHERE collection_id = any(${[...scope.collectionIds]}::uuid[])
    ),
    postings AS MATERIALIZED (
      SELECT p.chunk_id, p.term, p.tf, p.dl, q.qtf
      FROM query_terms q
      JOIN chunk_terms p ON p.term = q.term
      WHERE p.collection_id = any(${[...scope.collectionIds]}::uuid[]) AND p.tenant_id = ${scope.tenantId}::uuid
    ),
    term_weights AS (
      SELECT term, ln(1 + (corpus.n - count(*) + 0.5) / (count(*) + 0.5)) * (${params.k1}::float8 + 1) AS weight
      FROM postings CROSS JOIN corpus
      GROUP BY term, corpus.n
    ),
    scored AS (
      SELECT p.chunk_id, sum(p.qtf * w.weight * p.tf / (p.tf + corpus.norm_fixed + corpus.norm_per_length * p.dl)) AS score
      FROM postings p JOIN term_weights w USING (term) CROSS JOIN corpus
      GROUP BY p.chunk_id
    )
    SELECT s.chunk_id, s.score FROM scored s
    ${
      filtered
        ? sql`WHERE EXISTS (${db
            .selectFrom("chunks as c")
            .select(sql`1`.as("one"))
            .where((eb) =>
              eb.and([eb("c.id", "=", sql<string>`s.chunk_id`), chunkConditions(eb, scope, scope.filter)]),
            )})`
        : sql``
    }
    ORDER BY s.score DESC, s.chunk_id
    LIMIT ${limit}
  `.execute(db);
  return rows.map((r) => ({ chunkId: String(r.chunk_id), score: r.score }));
}

export interface ChunkDetails {
  readonly id: string;
  readonly documentId: string;
  readonly externalId: string;
  readonly collection: string;
  readonly title: string | null;
  readonly content: string;
  readonly headingPath: string[];
  readonly charStart: number;
  readonly charEnd: number;
  readonly tokenCount: number;
  readonly metadata: unknown;
}

export async function chunkDetails(
  db: Kysely<Database>,
  tenantId: string,
  ids: readonly string[],
): Promise<Map<string, ChunkDetails>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom("chunks as c")
    .innerJoin("documents as d", "d.id", "c.document_id")
    .innerJoin("collections as col", "col.id", "c.collection_id")
    .select([
      "c.id",
      "c.document_id",
      "d.external_id",
      "col.name as collection",
      "d.title",
      "c.content",
      "c.heading_path",
      "c.char_start",
      "c.char_end",
      "c.token_count",
      "c.metadata",
    ])
    .where("c.tenant_id", "=", tenantId)
    .where("c.id", "=", sql<string>`any(${[...ids]}::bigint[])`)
    .execute();
  return new Map(
    rows.map((r) => [
      String(r.id),
      {
        id: String(r.id),
        documentId: r.document_id,
        externalId: r.external_id,
        collection: r.collection,
        title: r.title,
        content: r.content,
        headingPath: r.heading_path,
        charStart: r.char_start,
        charEnd: r.char_end,
        tokenCount: r.token_count,
        metadata: r.metadata,
      },
    ]),
  );
}

/** The tenant's collections of these names (those that exist). */
export function collectionsByName(db: Kysely<Database>, tenantId: string, names: readonly string[]) {
  return db
    .selectFrom("collections")
    .select(["id", "name", "language"])
    .where("tenant_id", "=", tenantId)
    .where("name", "=", sql<string>`any(${[...names]}::text[])`)
    .execute();
}

/** Ids of the documents with these external ids in these collections (a search's document filter). */
export async function documentIdsByExternalId(
  db: Kysely<Database>,
  scope: { tenantId: string; collectionIds: readonly string[]; externalIds: readonly string[] },
): Promise<string[]> {
  const rows = await db
    .selectFrom("documents")
    .select("id")
    .where("tenant_id", "=", scope.tenantId)
    .where("collection_id", "=", sql<string>`any(${scope.collectionIds}::uuid[])`)
    .where("external_id", "=", sql<string>`any(${scope.externalIds}::text[])`)
    .execute();
  return rows.map((d) => d.id);
}
