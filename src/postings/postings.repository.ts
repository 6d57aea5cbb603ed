import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.ts";
import { type Bm25Parameters, lengthNormalisation, lexemeCount, termWeightSql } from "./bm25-weight.ts";

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
 * Rewrites these terms' blocks in one statement (one snapshot): the fresh blocks of each term merged,
 * or for `full` terms every block without the postings of chunks that no longer exist, and those
 * terms' deletion records cleared (exactly the deletions this snapshot sees, whose chunks it no
 * longer sees). Postings are sorted by their BM25 term weight at the current average length, so the
 * first blocks of a term hold its heaviest postings, and cut into blocks of BLOCK_SIZE.
 */
export async function compactTerms(
  db: Kysely<Database>,
  target: { collectionId: string; tenantId: string; avgdl: number } & Bm25Parameters,
  terms: readonly TermToCompact[],
  blockSize = BLOCK_SIZE,
): Promise<number> {
  const all = terms.map((t) => t.term);
  const full = terms.filter((t) => t.full).map((t) => t.term);
  const weight = termWeightSql(sql`tf`, sql`dl`, lengthNormalisation(target, target.avgdl));
  // Rows are found by key, term by term, and deleted by the row ids read (locked, so they stay put):
  // given `term = any(terms)`, or a join to the rows read, the planner may read every block of the
  // collection instead (one index condition, or a hash of them all), which it does when its
  // statistics predate the blocks (a new collection's first burst, before autovacuum analyzes it),
  // and a pass over a larger collection then outlasts the role's statement timeout. FOR UPDATE keeps
  // the blocks' lateral subquery a subquery; the deletions' needs OFFSET 0 not to be flattened into a join.
  const { rows } = await sql<{ blocks: number }>`
    WITH old AS (
      SELECT b.block_row, b.term, b.chunk_ids, b.tfs, b.dls
      FROM unnest(${all}::text[]) AS t(term)
      CROSS JOIN LATERAL (
        SELECT ctid AS block_row, term, chunk_ids, tfs, dls FROM bm25_blocks
        WHERE collection_id = ${target.collectionId}::uuid AND term = t.term
          AND (NOT compacted OR term = any(${full}::text[]))
        FOR UPDATE
      ) AS b
    ),
    kept AS (
      SELECT old.term, p.chunk_id, p.tf, p.dl
      FROM old CROSS JOIN LATERAL unnest(old.chunk_ids, old.tfs, old.dls) AS p(chunk_id, tf, dl)
      WHERE old.term <> all(${full}::text[]) OR EXISTS (SELECT 1 FROM chunks c WHERE c.id = p.chunk_id)
    ),
    weighted AS (SELECT term, chunk_id, tf, dl, ${weight} AS weight FROM kept),
    ranked AS (${rankInBlocks(blockSize)}),
    removed AS (DELETE FROM bm25_blocks b USING old WHERE b.ctid = old.block_row),
    cleared AS (
      DELETE FROM bm25_deletions WHERE ctid = any(ARRAY(
        SELECT d.ctid FROM unnest(${full}::text[]) AS f(term)
        CROSS JOIN LATERAL (
          SELECT ctid FROM bm25_deletions WHERE collection_id = ${target.collectionId}::uuid AND term = f.term
          OFFSET 0 -- a lookup per term: flattened into a join, the planner could hash all the collection's rows
        ) AS d
      ))
    ),
    added AS (${insertRankedBlocks(target)})
    SELECT count(*)::int AS blocks FROM added
  `.execute(db);
  return rows[0]?.blocks ?? 0;
}

/** `weighted(term, chunk_id, tf, dl, weight)` numbered into blocks: heaviest postings first, per term. */
function rankInBlocks(blockSize: number): RawBuilder<unknown> {
  return sql`SELECT *, (row_number() OVER (PARTITION BY term ORDER BY weight DESC, chunk_id) - 1) / ${blockSize}::int AS block
             FROM weighted`;
}

/** Writes `ranked` as compacted blocks, each in weight order. */
function insertRankedBlocks(target: { collectionId: string; tenantId: string }): RawBuilder<unknown> {
  return sql`
    INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, chunk_ids, tfs, dls)
    SELECT ${target.collectionId}::uuid, term, ${target.tenantId}::uuid, count(*)::int, max(tf), min(dl), true,
           array_agg(chunk_id ORDER BY weight DESC, chunk_id), array_agg(tf ORDER BY weight DESC, chunk_id),
           array_agg(dl ORDER BY weight DESC, chunk_id)
    FROM ranked GROUP BY term, block
    RETURNING 1`;
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
    ranked AS (${rankInBlocks(blockSize)}),
    added AS (${insertRankedBlocks(target)})
    SELECT count(*)::int AS blocks FROM added
  `.execute(db);
  return rows[0]?.blocks ?? 0;
}
