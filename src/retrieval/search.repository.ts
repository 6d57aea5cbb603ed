import { type ChunkLocation, chunkLocation, LOCATION_COLUMNS } from "./chunk-location.ts";
import { type Kysely, sql } from "kysely";
import pgvector from "pgvector";
import type { VectorIndexType } from "../config.ts";
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
  /**
   * The requester's principals (`*` is implied); null: the whole tenant. Row-level security keeps
   * the chunks whose access names none of them out of every read (the router sets them, with `*`,
   * for the read), so no query repeats the condition: estimated twice, it would be counted twice.
   */
  readonly principals: readonly string[] | null;
}

/** Whether anything but the collections narrows the scope: metadata, documents, or the requester's access. */
export function isFiltered(scope: SearchScope): boolean {
  return scope.filter !== undefined || scope.documentIds !== null || scope.principals !== null;
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

/**
 * Rows the walk returns at least. Iterative scans in relaxed order emit each batch of the walk in
 * order, not the whole: a scan that needed more than one batch (any filter, or another tenant's
 * vectors in the same graph) can emit a closer row after a farther one, so the first k rows are not
 * the k nearest. Taking more and sorting them exactly restores them (bench:acl: recall@10 0.93 → 0.97
 * at ef_search 200).
 */
const RELAXED_ORDER_ROWS = 40;

/** The HNSW index the migrations built (PGRAG_VECTOR_INDEX) and the embeddings' dimension. */
export interface VectorIndex {
  readonly type: VectorIndexType;
  readonly dimension: number;
  /**
   * Binary quantization keeps 1 bit per dimension: it takes this many candidates per result by
   * Hamming distance, re-ranked exactly on the full vectors (by the dimension when undefined).
   */
  readonly binaryOversampling: number | undefined;
}

/**
 * Candidates per result a binary index takes when none is configured: the fewer the bits, the
 * coarser the Hamming order, the more candidates the exact re-rank needs. Measured (bench:vectors
 * --data sift, recall@10): 128 bits 0.97 at 50×; 1,536 bits 0.99 at 4×.
 */
export function defaultBinaryOversampling(dimension: number): number {
  return Math.min(100, Math.max(4, Math.ceil(6_400 / dimension)));
}

/**
 * Nearest chunks by cosine similarity through the HNSW index, in a read started with hnswSettings.
 * The ORDER BY repeats the index's expression (the column itself, its halfvec cast, or its binary
 * quantization) so the planner walks that index; distances are then computed exactly on the full
 * vectors and the outer sort restores exact order.
 */
export async function vectorSearchIndexed(
  tx: Kysely<Database>,
  scope: SearchScope,
  embedding: readonly number[],
  limit: number,
  index: VectorIndex,
): Promise<LegHit[]> {
  const vector = pgvector.toSql(embedding);
  // A type modifier cannot be a parameter; the dimension is a validated integer from the config.
  const d = sql.raw(String(Math.trunc(index.dimension)));
  const walk =
    index.type === "halfvec"
      ? sql`c.embedding::halfvec(${d}) <=> ${vector}::halfvec(${d})`
      : index.type === "binary"
        ? sql`binary_quantize(c.embedding)::bit(${d}) <~> binary_quantize(${vector}::vector)::bit(${d})`
        : sql`c.embedding <=> ${vector}::vector`;
  const { rows } = await sql<{ id: string; distance: number }>`
    WITH nearest AS MATERIALIZED (
      ${tx
        .selectFrom("chunks as c")
        .select(["c.id", sql<number>`c.embedding <=> ${vector}::vector`.as("distance")])
        .where((eb) => chunkConditions(eb, scope, scope.filter))
        .orderBy(walk)
        .limit(
          index.type === "binary"
            ? limit * (index.binaryOversampling ?? defaultBinaryOversampling(index.dimension))
            : Math.max(limit, RELAXED_ORDER_ROWS),
        )}
    )
    SELECT id, distance FROM nearest ORDER BY distance, id LIMIT ${limit}
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

export interface ChunkDetails {
  readonly id: string;
  readonly documentId: string;
  readonly externalId: string;
  readonly collection: string;
  readonly title: string | null;
  readonly content: string;
  readonly headingPath: string[];
  readonly location: ChunkLocation;
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
      ...LOCATION_COLUMNS,
      "c.id",
      "c.document_id",
      "d.external_id",
      "col.name as collection",
      "d.title",
      "c.content",
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
        location: chunkLocation(r),
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
