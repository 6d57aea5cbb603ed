import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.ts";
import { type Bm25Parameters, lengthNormalisation, lexemeCount, termWeight, termWeightSql } from "./bm25-weight.ts";
import { encodeBlock, gapInBlock, PACKED_BLOCK_COLUMNS, type Posting, postingsIn } from "./postings-codec.ts";

/** Postings per compacted block. */
export const BLOCK_SIZE = 128;

export interface TermToCompact {
  readonly term: string;
  /** Rewrite every block of the term and drop deleted chunks' postings (else: merge the fresh blocks). */
  readonly full: boolean;
}

/** When a term's deleted postings are dropped: at least this many, and this share of its postings. */
export interface DeadPostingsThreshold {
  readonly count: number;
  readonly share: number;
}
export const DEAD_POSTINGS_THRESHOLD: DeadPostingsThreshold = { count: 16, share: 0.05 };

/**
 * The first `limit` terms after `after`, in term order, whose postings are worth rewriting: two or
 * more fresh (appended) blocks, a fresh block larger than a compacted one, or enough deleted postings
 * that dropping them pays for reading the whole term. The block headers are read in key order and
 * grouped as they stream by, so a call reads only up to its last term: a pass over a collection,
 * batch after batch from the previous batch's last term, reads each header once (grouping every term
 * of the collection to keep the first `limit` would make a pass quadratic in its terms).
 */
export async function termsToCompact(
  db: Kysely<Database>,
  collectionId: string,
  limit: number,
  after = "",
  dead: DeadPostingsThreshold = DEAD_POSTINGS_THRESHOLD,
): Promise<TermToCompact[]> {
  const { rows } = await sql<{ term: string; full: boolean }>`
    SELECT term, "full" FROM (
      SELECT b.term, b.fresh, b.largest_fresh,
             coalesce(d.dead > 0 AND d.dead >= greatest(${dead.count}, ${dead.share}::float8 * b.postings), false) AS "full"
      FROM (
        SELECT term, count(*) FILTER (WHERE NOT compacted) AS fresh,
               coalesce(max(postings) FILTER (WHERE NOT compacted), 0) AS largest_fresh, sum(postings) AS postings
        FROM bm25_blocks WHERE collection_id = ${collectionId}::uuid AND term > ${after}
        GROUP BY term
      ) AS b
      LEFT JOIN LATERAL (
        SELECT sum(postings) AS dead FROM bm25_deletions WHERE collection_id = ${collectionId}::uuid AND term = b.term
      ) AS d ON true
    ) AS judged
    WHERE fresh >= 2 OR largest_fresh > ${BLOCK_SIZE} OR "full"
    ORDER BY term
    LIMIT ${limit}
  `.execute(db);
  return rows;
}

/**
 * Rewrites these terms' blocks: the fresh blocks of each term merged, or for `full` terms every
 * block without the postings of chunks that no longer exist, and those terms' deletion records
 * cleared. Postings are sorted by their BM25 term weight at the current average length, so the first
 * blocks of a term hold its heaviest postings, and cut into blocks of BLOCK_SIZE.
 *
 * Run it in a transaction with one snapshot (REPEATABLE READ): the blocks, which chunks are gone and
 * which deletion records to clear must all be read as of one moment — a chunk deleted after it keeps
 * its posting and its deletion record, one deleted before loses both, one written and deleted after
 * it (its posting in a block not read) keeps both — so df = Σ postings − Σ deletions stays exact.
 */
export async function compactTerms(
  db: Kysely<Database>,
  target: { collectionId: string; tenantId: string; avgdl: number } & Bm25Parameters,
  terms: readonly TermToCompact[],
  blockSize = BLOCK_SIZE,
): Promise<number> {
  const all = terms.map((t) => t.term);
  const full = terms.filter((t) => t.full).map((t) => t.term);
  // Rows are found by key, term by term (a lookup per term: given `term = any(terms)`, the planner
  // may read every block of the collection while its statistics predate the blocks), and locked,
  // so they stay put until they are replaced.
  const { rows: old } = await sql<{
    block_row: string;
    term: string;
    first_chunk: string;
    postings: number;
    data: Buffer;
  }>`
    SELECT b.block_row, b.term, b.first_chunk, b.postings, b.data
    FROM unnest(${all}::text[]) AS t(term)
    CROSS JOIN LATERAL (
      SELECT ctid::text AS block_row, term, first_chunk, postings, data FROM bm25_blocks
      WHERE collection_id = ${target.collectionId}::uuid AND term = t.term
        AND (NOT compacted OR term = any(${full}::text[]))
      FOR UPDATE
    ) AS b
  `.execute(db);
  const postingsByTerm = new Map<string, Posting[]>();
  for (const block of old) {
    const list = postingsByTerm.get(block.term) ?? [];
    postingsByTerm.set(block.term, list);
    for (const p of postingsIn(block.data, Number(block.first_chunk), block.postings)) list.push(p);
  }
  const { live, deletions } = await liveChunksAndDeletions(db, target.collectionId, full, postingsByTerm);
  const n = lengthNormalisation(target, target.avgdl);
  const fullTerms = new Set(full);
  const blocks: { term: string; postings: Posting[] }[] = [];
  for (const [term, list] of postingsByTerm) {
    const kept = fullTerms.has(term) ? list.filter((p) => live.has(p.chunkId)) : list;
    const weighted = kept.map((p) => ({ p, weight: termWeight(p.tf, p.dl, n) }));
    weighted.sort((a, b) => b.weight - a.weight || a.p.chunkId - b.p.chunkId);
    for (let i = 0; i < weighted.length; i += blockSize) {
      blocks.push({ term, postings: weighted.slice(i, i + blockSize).map((w) => w.p) });
    }
  }
  await sql`DELETE FROM bm25_blocks WHERE ctid = any(${old.map((b) => b.block_row)}::tid[])`.execute(db);
  if (deletions.length > 0) await sql`DELETE FROM bm25_deletions WHERE ctid = any(${deletions}::tid[])`.execute(db);
  await insertCompactedBlocks(db, target, blocks);
  return blocks.length;
}

/** Of the chunks holding the `full` terms' postings, those that still exist, and those terms' deletion records. */
async function liveChunksAndDeletions(
  db: Kysely<Database>,
  collectionId: string,
  full: readonly string[],
  postingsByTerm: ReadonlyMap<string, readonly Posting[]>,
): Promise<{ live: Set<number>; deletions: string[] }> {
  if (full.length === 0) return { live: new Set(), deletions: [] };
  const ids = new Set<number>();
  for (const term of full) for (const p of postingsByTerm.get(term) ?? []) ids.add(p.chunkId);
  const { rows } = await sql<{ live: string[]; deletions: string[] }>`
    SELECT ARRAY(
             SELECT id::text FROM chunks WHERE collection_id = ${collectionId}::uuid AND id = any(${[...ids]}::bigint[])
           ) AS live,
           ARRAY(
             SELECT d.ctid::text FROM unnest(${full}::text[]) AS f(term)
             CROSS JOIN LATERAL (
               SELECT ctid FROM bm25_deletions WHERE collection_id = ${collectionId}::uuid AND term = f.term
               OFFSET 0 -- a lookup per term: flattened into a join, the planner could hash all the collection's rows
             ) AS d
           ) AS deletions
  `.execute(db);
  return { live: new Set((rows[0]?.live ?? []).map(Number)), deletions: rows[0]?.deletions ?? [] };
}

/** Writes compacted blocks of postings, encoded, in one statement. */
async function insertCompactedBlocks(
  db: Kysely<Database>,
  target: { collectionId: string; tenantId: string },
  blocks: readonly { term: string; postings: readonly Posting[] }[],
): Promise<void> {
  if (blocks.length === 0) return;
  const encoded = blocks.map((b) => ({ term: b.term, postings: b.postings, ...encodeBlock(b.postings) }));
  await sql`
    INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, first_chunk, last_chunk, data)
    SELECT ${target.collectionId}::uuid, b.term, ${target.tenantId}::uuid, b.postings, b.max_tf, b.min_dl, true,
           b.first_chunk, b.last_chunk, b.data
    FROM unnest(${encoded.map((b) => b.term)}::text[], ${encoded.map((b) => b.postings.length)}::int[],
                ${encoded.map((b) => Math.max(...b.postings.map((p) => p.tf)))}::int[],
                ${encoded.map((b) => Math.min(...b.postings.map((p) => p.dl)))}::int[],
                ${encoded.map((b) => b.firstChunk)}::bigint[], ${encoded.map((b) => b.lastChunk)}::bigint[],
                ${encoded.map((b) => b.data)}::bytea[])
      AS b(term, postings, max_tf, min_dl, first_chunk, last_chunk, data)
  `.execute(db);
}

/**
 * Rebuilds a collection's postings from its chunks in one pass: compacted, weight-sorted blocks of
 * `blockSize`, with no deletions left over. To repair, or to compare layouts (the benches).
 */
export async function rebuildPostings(
  db: Kysely<Database>,
  target: { collectionId: string; tenantId: string } & Bm25Parameters,
  blockSize = BLOCK_SIZE,
): Promise<number> {
  await sql`DELETE FROM bm25_blocks WHERE collection_id = ${target.collectionId}::uuid`.execute(db);
  await sql`DELETE FROM bm25_deletions WHERE collection_id = ${target.collectionId}::uuid`.execute(db);
  return writePostingsOf(
    db,
    target,
    sql`(SELECT id, tsv FROM chunks WHERE collection_id = ${target.collectionId}::uuid) c`,
    blockSize,
  );
}

/**
 * Writes the postings of the chunks `source` holds (a FROM item aliased `c`, with `id` and `tsv`) as
 * compacted, weight-sorted blocks, next to the collection's other blocks: the bulk path, one sort of
 * all postings instead of many appends and compactions (after a bulk load, an import's staged chunks).
 */
export async function writePostingsOf(
  db: Kysely<Database>,
  target: { collectionId: string; tenantId: string } & Bm25Parameters,
  source: RawBuilder<unknown>,
  blockSize = BLOCK_SIZE,
): Promise<number> {
  // The average length is the statement's own: at an average of 1, perLength divided by it.
  const unit = lengthNormalisation(target, 1);
  const { rows } = await sql<{ blocks: number }>`
    WITH postings AS (
      SELECT c.id AS chunk_id, u.lexeme AS term, ${lexemeCount("u")} AS tf
      FROM ${source} CROSS JOIN LATERAL unnest(c.tsv) AS u
    ),
    lengths AS (SELECT chunk_id, sum(tf)::int AS dl FROM postings GROUP BY chunk_id),
    corpus AS (SELECT greatest(avg(dl), 1) AS avgdl FROM lengths),
    weighted AS (
      SELECT p.term, p.chunk_id, p.tf, l.dl,
             ${termWeightSql(sql`p.tf`, sql`l.dl`, { fixed: unit.fixed, perLength: sql`${unit.perLength}::float8 / corpus.avgdl` })} AS weight
      FROM postings p JOIN lengths l USING (chunk_id) CROSS JOIN corpus
    ),
    ranked AS (
      SELECT *, (row_number() OVER (PARTITION BY term ORDER BY weight DESC, chunk_id) - 1) / ${blockSize}::int AS block
      FROM weighted
    ),
    gapped AS (SELECT *, ${gapInBlock(sql`chunk_id`, sql`term, block`)} AS gap FROM ranked),
    added AS (
      INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, first_chunk, last_chunk, data, compacted)
      SELECT ${target.collectionId}::uuid, term, ${target.tenantId}::uuid, ${PACKED_BLOCK_COLUMNS}, true
      FROM gapped GROUP BY term, block
      RETURNING 1
    )
    SELECT count(*)::int AS blocks FROM added
  `.execute(db);
  return rows[0]?.blocks ?? 0;
}
