/**
 * The SQL of BM25 search over blocked postings (bm25-search.ts runs the rounds, bm25-plan.ts decides them,
 * block-scoring.ts sums the blocks read):
 * read-only, no temporary objects, so it runs on hot standbys inside the router's read transaction.
 */
import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.ts";
import { lexemeCount, termWeightSql } from "../postings/bm25-weight.ts";
import type { BlockHeader, Candidate, Corpus, Round, Scoring, TermStatistics } from "./bm25-plan.ts";
import { type ChunkBound, chunkBounds, type FetchedBlock } from "./block-scoring.ts";
import { chunkConditions } from "./filters.ts";
import type { LegHit } from "./fusion.ts";
import type { SearchScope } from "./search.repository.ts";

/** The query's terms with their statistics, their blocks' headers, and the collections' size. */
export async function bm25Statistics(
  db: Kysely<Database>,
  scope: SearchScope,
  query: string,
): Promise<{ terms: TermStatistics[]; blocks: BlockHeader[]; corpus: Corpus }> {
  const collections = [...scope.collectionIds];
  // One index-only scan of the block headers of the query's terms, with the deletions per term and
  // the collections' N and total length: a row per term, its headers as lists (a query at 1M chunks
  // has ~5,000–15,000 of them, and a row each cost more to ship and parse than to read). The lists are
  // comma-separated text: pg's array parser takes ~5× as long as split() on them.
  const { rows } = await sql<{
    term: string;
    qtf: number;
    block_ids: string | null;
    postings: string | null;
    max_tfs: string | null;
    min_dls: string | null;
    deleted: string | null;
    n: string | null;
    total_length: string | null;
  }>`
    WITH query_terms AS (
      SELECT u.lexeme AS term, ${lexemeCount("u")} AS qtf
      FROM unnest(to_tsvector(${scope.language}::regconfig, ${query})) AS u
    ),
    deletions AS (
      SELECT d.term, sum(d.postings) AS deleted
      FROM bm25_deletions d JOIN query_terms q USING (term)
      WHERE d.collection_id = any(${collections}::uuid[]) AND d.tenant_id = ${scope.tenantId}::uuid
      GROUP BY d.term
    ),
    corpus AS (
      SELECT sum(chunk_count) AS n, sum(total_length) AS total_length
      FROM collection_stats WHERE collection_id = any(${collections}::uuid[])
    )
    SELECT q.term, q.qtf, b.block_ids, b.postings, b.max_tfs, b.min_dls, d.deleted, corpus.n, corpus.total_length
    FROM query_terms q CROSS JOIN corpus
    LEFT JOIN deletions d USING (term)
    CROSS JOIN LATERAL (
      SELECT string_agg(block_id::text, ',') AS block_ids, string_agg(postings::text, ',') AS postings,
             string_agg(max_tf::text, ',') AS max_tfs, string_agg(min_dl::text, ',') AS min_dls
      FROM bm25_blocks
      WHERE term = q.term AND collection_id = any(${collections}::uuid[]) AND tenant_id = ${scope.tenantId}::uuid
    ) AS b
  `.execute(db);
  const n = Number(rows[0]?.n ?? 0);
  const corpus = { n, avgdl: n > 0 ? Number(rows[0]?.total_length ?? 0) / n : 1 };
  const terms: TermStatistics[] = [];
  const blocks: BlockHeader[] = [];
  for (const r of rows) {
    let postings = 0;
    const [inBlocks, maxTfs, minDls] = [r.postings, r.max_tfs, r.min_dls].map((list) => list?.split(",").map(Number));
    r.block_ids?.split(",").forEach((blockId, i) => {
      const inBlock = inBlocks?.[i] ?? 0;
      postings += inBlock;
      blocks.push({ term: r.term, blockId, postings: inBlock, maxTf: maxTfs?.[i] ?? 0, minDl: minDls?.[i] ?? 0 });
    });
    const dead = Number(r.deleted ?? 0);
    terms.push({ term: r.term, qtf: r.qtf, df: postings - dead, dead });
  }
  return { terms, blocks, corpus };
}

/** The query's weights as a relation w(term, weight) for the SQL below. */
function weightsRelation(s: Scoring): RawBuilder<unknown> {
  const terms = [...s.weights.keys()];
  return sql`unnest(${terms}::text[], ${terms.map((t) => s.weights.get(t) ?? 0)}::float8[]) AS w(term, weight)`;
}

/**
 * A chunk's exact BM25 score from its own lexemes (the same tf and length its postings hold), read
 * once. ts_filter keeps only the query's lexemes (in C, ~8× faster than unnesting every lexeme);
 * `length` is a FROM item with the chunk's length in lexemes (`dl`), known from its postings or
 * counted here.
 */
function exactScore(s: Scoring, w: RawBuilder<unknown>, length: RawBuilder<unknown>): RawBuilder<number | null> {
  const terms = [...s.weights.keys()];
  return sql<number | null>`(
    SELECT sum(w.weight * ${termWeightSql(sql`x.tf`, sql`len.dl`, s)})
    FROM (
      SELECT u.lexeme AS term, ${lexemeCount("u")} AS tf
      FROM unnest(ts_filter(setweight(setweight(c.tsv, 'D'), 'A', ${terms}::text[]), '{a}')) AS u
    ) AS x
    JOIN ${w} USING (term) CROSS JOIN ${length} AS len(dl)
  )`;
}

/** A chunk's length in lexemes, counted from its tsvector (the same sum its postings were written with). */
const countedLength = sql`(SELECT sum(${lexemeCount("u")}) FROM unnest(c.tsv) AS u)`;

/**
 * A round's blocks, each read by its whole key (block_id = any(ids) under term = any(terms) would
 * descend the index once per id and term). OFFSET 0 keeps the lookup a lookup: as a plain join the
 * planner may hash every block of the collection instead, which it does while its statistics
 * predate the blocks (a new collection, before autovacuum analyzes it).
 */
async function fetchBlocks(db: Kysely<Database>, scope: SearchScope, round: Round): Promise<FetchedBlock[]> {
  const read = round.blocks;
  if (read.length === 0) return [];
  const { rows } = await sql<{ i: number; first_chunk: string; last_chunk: string; data: Buffer }>`
    SELECT r.i, b.first_chunk, b.last_chunk, b.data
    FROM unnest(${read.map((b) => b.term)}::text[], ${read.map((b) => b.blockId)}::bigint[]) WITH ORDINALITY AS r(term, block_id, i)
    CROSS JOIN LATERAL (
      SELECT first_chunk, last_chunk, data FROM bm25_blocks
      WHERE collection_id = any(${[...scope.collectionIds]}::uuid[]) AND tenant_id = ${scope.tenantId}::uuid
        AND term = r.term AND block_id = r.block_id
      OFFSET 0
    ) AS b
  `.execute(db);
  return rows.map((r) => ({
    term: (read[Number(r.i) - 1] as BlockHeader).term,
    firstChunk: Number(r.first_chunk),
    lastChunk: Number(r.last_chunk),
    data: r.data,
  }));
}

/** The chunks seen in a round's blocks with their upper bounds and lengths (see chunkBounds). */
async function boundsOfRound(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  round: Round,
  limit: number | null,
  floor: number,
): Promise<ChunkBound[]> {
  const postings = round.blocks.reduce((sum, b) => sum + b.postings, 0);
  return chunkBounds(await fetchBlocks(db, scope, round), postings, s, round, limit, floor);
}

/**
 * A candidate's score: exact from its lexemes when it is a live chunk passing the filters (null
 * otherwise), or, when every block was read (`partialIsExact`), its partial sum itself. `cand` is the
 * FROM item with chunk_id, dl and upper.
 */
function liveScore(db: Kysely<Database>, scope: SearchScope, s: Scoring, partialIsExact: boolean) {
  const w = weightsRelation(s);
  return db
    .selectFrom("chunks as c")
    .select((partialIsExact ? sql<number>`cand.upper` : exactScore(s, w, sql`(SELECT cand.dl)`)).as("score"))
    .where((eb) => eb.and([eb("c.id", "=", sql<string>`cand.chunk_id`), chunkConditions(eb, scope, scope.filter)]));
}

/**
 * Reads a round's blocks; returns the candidates with the highest upper bounds (`limit` + 1 of them,
 * or all when `limit` is null; none below `floor`), each with its exact score when it is a live chunk
 * passing the filters: completed from its lexemes, or, when every block was read, its partial sum itself.
 */
export async function readRound(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  round: Round,
  limit: number | null,
  floor = 0,
): Promise<Candidate[]> {
  const bounds = await boundsOfRound(db, scope, s, round, limit === null ? null : limit + 1, floor);
  const scores = await scoresOf(db, scope, s, bounds, round.exhaustive);
  return bounds.map((b) => {
    const score = scores.get(b.chunkId);
    // Every block read: the partial sum is the score, taken as summed here (not back from SQL's text).
    return {
      chunkId: String(b.chunkId),
      upper: b.upper,
      score: score === undefined ? null : round.exhaustive ? b.upper : score,
    };
  });
}

/** Exhaustive over the filtered set: every chunk passing the filters that holds a query term. */
export async function scoreFilteredChunks(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  k: number,
): Promise<LegHit[]> {
  const w = weightsRelation(s);
  const terms = [...s.weights.keys()];
  const { rows } = await sql<{ chunk_id: string; score: number }>`
    SELECT id AS chunk_id, score FROM (
      ${db
        .selectFrom("chunks as c")
        .select(["c.id", exactScore(s, w, countedLength).as("score")])
        .where((eb) =>
          eb.and([
            chunkConditions(eb, scope, scope.filter),
            // Any of the query's lexemes, as a tsquery of quoted lexemes OR-ed.
            sql<boolean>`c.tsv @@ (SELECT string_agg(quote_literal(t), ' | ')::tsquery FROM unnest(${terms}::text[]) AS t)`,
          ]),
        )}
    ) AS scored
    ORDER BY score DESC, chunk_id
    LIMIT ${k}
  `.execute(db);
  return rows.map((r) => ({ chunkId: String(r.chunk_id), score: r.score }));
}

/** A round's candidates with their upper bounds and lengths, none completed (see chunkBounds). */
export async function candidateBounds(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  round: Round,
  limit: number,
  floor: number,
): Promise<{ chunkId: string; dl: number; upper: number }[]> {
  const bounds = await boundsOfRound(db, scope, s, round, limit + 1, floor);
  return bounds.map((b) => ({ chunkId: String(b.chunkId), dl: b.dl, upper: b.upper }));
}

/** These candidates' exact scores (null: gone, or filtered out). */
export async function completeCandidates(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  candidates: readonly { chunkId: string; dl: number }[],
): Promise<Map<string, number | null>> {
  const scores = await scoresOf(
    db,
    scope,
    s,
    candidates.map((c) => ({ chunkId: Number(c.chunkId), dl: c.dl, upper: 0 })),
    false,
  );
  return new Map(candidates.map((c) => [c.chunkId, scores.get(Number(c.chunkId)) ?? null]));
}

/**
 * The candidates' scores, for those that are live chunks passing the filters: exact from their
 * lexemes, or their partial sums when every block was read (`partialIsExact`).
 */
async function scoresOf(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  candidates: readonly ChunkBound[],
  partialIsExact: boolean,
): Promise<Map<number, number>> {
  if (candidates.length === 0) return new Map();
  const { rows } = await sql<{ chunk_id: string; score: number | null }>`
    SELECT cand.chunk_id, live.score
    FROM unnest(${candidates.map((c) => c.chunkId)}::bigint[], ${candidates.map((c) => c.dl)}::int[],
                ${candidates.map((c) => c.upper)}::float8[]) AS cand(chunk_id, dl, upper)
    CROSS JOIN LATERAL (${liveScore(db, scope, s, partialIsExact)}) AS live
  `.execute(db);
  return new Map(rows.filter((r) => r.score !== null).map((r) => [Number(r.chunk_id), r.score as number]));
}
