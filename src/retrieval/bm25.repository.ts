import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.ts";
import {
  type BlockHeader,
  type Bm25Parameters,
  type Candidate,
  type Corpus,
  judgeRound,
  planCutRound,
  planRound,
  type Round,
  type Scoring,
  scoring,
  type TermStatistics,
} from "./bm25-plan.ts";
import { chunkConditions } from "./filters.ts";
import type { LegHit } from "./fusion.ts";
import type { SearchScope } from "./search.repository.ts";

/** How far early termination goes before scoring every block; the defaults were measured on the scale corpus. */
export interface Bm25Tuning {
  /** Postings the first round reads: the heaviest blocks, for a first k-th score θ. */
  readonly firstRoundPostings: number;
  /**
   * The deeper rounds after it, as multiples of the best θ so far: the top k's k-th score is usually
   * well above the first round's (×1.7 at the median on the 1M scale corpus), and a round planned for
   * a higher score reads far fewer postings. A guess that proves too high still raises θ, and the next
   * multiple (1: θ itself, always right) is read with it.
   */
  readonly floorGuesses: readonly number[];
  /**
   * Each deeper round reads until the unseen bound is this share of its target: lower reads more
   * postings but leaves fewer candidates above the target to complete (~15 µs each against ~0.7 µs
   * a posting).
   */
  readonly unseenShare: number;
  /** Candidates a deeper round may complete at most; past that it cannot certify. */
  readonly candidateLimit: number;
  /** Postings a deeper round must leave unread to be tried: one that does not certify costs what it read. */
  readonly worthwhileSkip: number;
}

export const BM25_TUNING: Bm25Tuning = {
  firstRoundPostings: 1_024,
  floorGuesses: [1.5, 1],
  unseenShare: 0.7,
  candidateLimit: 8_192,
  worthwhileSkip: 65_536,
};
/** Round 1 is tried only for queries with more postings than this many times what it reads. */
const ROUND_ONE_WORTHWHILE = 8;

export interface Bm25Outcome {
  readonly hits: LegHit[];
  /**
   * Which path answered: certified by the first round (the heaviest blocks), by a deeper round (each
   * term cut where its bounds fall below a floor), every block, or the filtered chunks themselves.
   */
  readonly path: "early" | "cut" | "exhaustive" | "filtered";
}

/**
 * Okapi BM25 (Lucene's idf, ln(1 + (N − df + 0.5) / (df + 0.5))) over the query's lexemes, OR-ed,
 * exact: the same top k as scoring every posting. A first round reads only the heaviest blocks and
 * stops there when that certifies the top k; deeper rounds cut each term at a floor for the k-th
 * score (bm25-plan.ts); otherwise every block is scored.
 * `selectiveFilter` (few chunks pass the filters) scores the filtered chunks themselves instead.
 * Read-only, no temporary objects: it runs on hot standbys inside the router's read transaction.
 */
export async function bm25Search(
  db: Kysely<Database>,
  scope: SearchScope,
  query: string,
  k: number,
  params: Bm25Parameters,
  selectiveFilter = false,
  tuning: Partial<Bm25Tuning> = {},
): Promise<Bm25Outcome> {
  const { firstRoundPostings, floorGuesses, unseenShare, candidateLimit, worthwhileSkip } = {
    ...BM25_TUNING,
    ...tuning,
  };
  const { terms, blocks, corpus } = await bm25Statistics(db, scope, query);
  const s = scoring(terms, corpus, params);
  if (s.weights.size === 0 || k <= 0) return { hits: [], path: "early" };
  if (selectiveFilter) return { hits: await scoreFilteredChunks(db, scope, s, k), path: "filtered" };
  const filtered = scope.filter !== undefined || scope.documentIds !== null;
  // Completed candidates in the first round: k, and room for deleted chunks (and, filtered, for failures).
  const dead = terms.reduce((sum, t) => sum + t.dead, 0);
  const limit = (filtered ? 8 : 2) * k + dead;
  // Round 1: the heaviest blocks of all terms — only where the query's postings are many times what
  // it reads: below that, scoring every block costs less than a round that may not certify (measured).
  const postings = postingsOf(blocks);
  if (postings > ROUND_ONE_WORTHWHILE * firstRoundPostings) {
    const first = planRound(blocks, s, firstRoundPostings);
    const firstCandidates = await readRound(db, scope, s, first, limit);
    const one = judgeRound(firstCandidates, limit, k, first);
    if (one.certified) return { hits: one.hits, path: "early" };
    // Deeper rounds: any k chunks' exact scores bound the final k-th score from below.
    const best = new Map(one.hits.map((h) => [h.chunkId, h.score]));
    // Every chunk completed so far, with its exact score (null: gone or filtered out): a deeper round
    // meets the same chunks again at the top of its bounds and need not re-read them.
    const completedScores = new Map(firstCandidates.map((c) => [c.chunkId, c.score]));
    let floor = one.threshold;
    for (const guess of floorGuesses) {
      if (floor <= 0) break;
      // A little below the target: the chunk that scores it must not be lost to rounding in its bound.
      const target = guess * floor * (1 - 1e-9);
      const round = planCutRound(blocks, s, first, target * unseenShare);
      if (round.exhaustive || postings - postingsOf(round.blocks) < worthwhileSkip) break;
      const { candidates, completed } = await readRoundLazily(
        db,
        scope,
        s,
        round,
        k,
        candidateLimit,
        target,
        completedScores,
      );
      const deeper = judgeRound(candidates, completed, k, round);
      // Chunks below the target were not candidates: certified only if the k-th score reached it.
      if (deeper.certified && deeper.threshold >= target) return { hits: deeper.hits, path: "cut" };
      for (const h of deeper.hits) best.set(h.chunkId, h.score);
      floor = Math.max(floor, kthLargest([...best.values()], k));
    }
  }
  // Not certified: every block, where every candidate's partial sum is already its exact score.
  const all = planRound(blocks, s, Number.POSITIVE_INFINITY);
  const two = judgeRound(await readRound(db, scope, s, all, limit), limit, k, all);
  if (two.certified) return { hits: two.hits, path: "exhaustive" };
  // More deleted or filtered-out candidates than room: every candidate.
  const everything = await readRound(db, scope, s, all, null);
  return { hits: judgeRound(everything, everything.length, k, all).hits, path: "exhaustive" };
}

/** The k-th largest of `scores` (0 with fewer than k). */
function kthLargest(scores: number[], k: number): number {
  return scores.length >= k ? (scores.sort((a, b) => b - a)[k - 1] ?? 0) : 0;
}

/** Postings in these blocks. */
function postingsOf(blocks: readonly BlockHeader[]): number {
  return blocks.reduce((sum, b) => sum + b.postings, 0);
}

async function bm25Statistics(
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
      SELECT lexeme AS term, coalesce(cardinality(positions), 1) AS qtf
      FROM unnest(to_tsvector(${scope.language}::regconfig, ${query}))
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
    SELECT sum(w.weight * x.tf / (x.tf + ${s.fixed}::float8 + ${s.perLength}::float8 * len.dl))
    FROM (
      SELECT u.lexeme AS term, coalesce(cardinality(u.positions), 1) AS tf
      FROM unnest(ts_filter(setweight(setweight(c.tsv, 'D'), 'A', ${terms}::text[]), '{a}')) AS u
    ) AS x
    JOIN ${w} USING (term) CROSS JOIN ${length} AS len(dl)
  )`;
}

/** A chunk's length in lexemes, counted from its tsvector (the same sum its postings were written with). */
const countedLength = sql`(SELECT sum(coalesce(cardinality(u.positions), 1)) FROM unnest(c.tsv) AS u)`;

/**
 * The chunks seen in a round's blocks with their upper bounds (exact partial sum + what the terms
 * they were not seen in may add) and lengths: the highest `limit` + 1 (all when `limit` is null),
 * none below `floor`, in the order they are completed.
 */
function candidateBounds(
  scope: SearchScope,
  s: Scoring,
  round: Round,
  limit: number | null,
  floor: number,
): RawBuilder<{ chunk_id: string; dl: number; upper: number }> {
  const read = round.blocks;
  return sql`
    WITH postings AS (
      -- Each block by its whole key, with its term's weight and unread bound: block_id = any(ids) under
      -- term = any(terms) descends the index once per id and term. Unnested in the select list, a
      -- block's arrays stream through (ProjectSet); unnest in FROM would copy them into a tuplestore.
      -- OFFSET 0 keeps the lookup a lookup: as a plain join the planner may hash every block of the
      -- collection instead, which it does while its statistics predate the blocks (a new collection,
      -- before autovacuum analyzes it: 385 ms a round at SciFact's size instead of 15).
      SELECT unnest(b.chunk_ids) AS chunk_id, unnest(b.tfs) AS tf, unnest(b.dls) AS dl, r.weight, r.unread
      FROM unnest(${read.map((b) => b.term)}::text[], ${read.map((b) => b.blockId)}::bigint[],
                  ${read.map((b) => s.weights.get(b.term) ?? 0)}::float8[],
                  ${read.map((b) => round.unread.get(b.term) ?? 0)}::float8[]) AS r(term, block_id, weight, unread)
      CROSS JOIN LATERAL (
        SELECT chunk_ids, tfs, dls FROM bm25_blocks
        WHERE collection_id = any(${[...scope.collectionIds]}::uuid[]) AND tenant_id = ${scope.tenantId}::uuid
          AND term = r.term AND block_id = r.block_id
        OFFSET 0
      ) AS b
    ),
    bounded AS (
      SELECT chunk_id, max(dl) AS dl,
             sum(weight * tf / (tf + ${s.fixed}::float8 + ${s.perLength}::float8 * dl))
               + ${round.unseenBound}::float8 - sum(unread) AS upper
      FROM postings
      GROUP BY chunk_id
    )
    SELECT chunk_id, dl, upper FROM bounded
    WHERE upper >= ${floor}::float8
    ORDER BY upper DESC, chunk_id
    ${limit === null ? sql`` : sql`LIMIT ${limit + 1}`}
  `;
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
async function readRound(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  round: Round,
  limit: number | null,
  floor = 0,
): Promise<Candidate[]> {
  const { rows } = await sql<{ chunk_id: string; upper: number; score: number | null }>`
    SELECT cand.chunk_id, cand.upper, live.score
    FROM (${candidateBounds(scope, s, round, limit, floor)}) AS cand
    LEFT JOIN LATERAL (${liveScore(db, scope, s, round.exhaustive)}) AS live ON true
    ORDER BY cand.upper DESC, cand.chunk_id
  `.execute(db);
  return rows.map((r) => ({ chunkId: String(r.chunk_id), upper: r.upper, score: r.score }));
}

/**
 * Reads a round's blocks for the candidates' bounds only (at most `limit` + 1, none below `floor`),
 * then completes them in bound order, in growing batches, and stops as soon as the next bound cannot
 * reach the k-th exact score so far: with a floor far below the final k-th score, most candidates
 * are never completed. `known` holds the chunks completed by earlier rounds (and takes this one's).
 * Returns the candidates and how many were completed, for judgeRound.
 */
async function readRoundLazily(
  db: Kysely<Database>,
  scope: SearchScope,
  s: Scoring,
  round: Round,
  k: number,
  limit: number,
  floor: number,
  known: Map<string, number | null>,
): Promise<{ candidates: Candidate[]; completed: number }> {
  const { rows } = await candidateBounds(scope, s, round, limit, floor).execute(db);
  const candidates: Candidate[] = rows.map((r) => ({ chunkId: String(r.chunk_id), upper: r.upper, score: null }));
  const scores: number[] = [];
  let completed = 0;
  for (let batch = 2 * k; completed < Math.min(limit, rows.length); batch *= 2) {
    const next = rows.slice(completed, Math.min(limit, completed + batch));
    const unknown = next.filter((r) => !known.has(String(r.chunk_id)));
    if (unknown.length > 0) {
      const { rows: scored } = await sql<{ chunk_id: string; score: number | null }>`
        SELECT cand.chunk_id, live.score
        FROM unnest(${unknown.map((r) => r.chunk_id)}::bigint[], ${unknown.map((r) => r.dl)}::int[]) AS cand(chunk_id, dl)
        LEFT JOIN LATERAL (${liveScore(db, scope, s, false)}) AS live ON true
      `.execute(db);
      for (const r of scored) known.set(String(r.chunk_id), r.score);
    }
    for (let i = completed; i < completed + next.length; i++) {
      const c = candidates[i] as Candidate;
      const score = known.get(c.chunkId) ?? null;
      candidates[i] = { ...c, score };
      if (score !== null) scores.push(score);
    }
    completed += next.length;
    if ((candidates[completed]?.upper ?? 0) <= kthLargest(scores, k)) break;
  }
  return { candidates, completed };
}

/** Exhaustive over the filtered set: every chunk passing the filters that holds a query term. */
async function scoreFilteredChunks(db: Kysely<Database>, scope: SearchScope, s: Scoring, k: number): Promise<LegHit[]> {
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
