import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "../db/database.ts";
import {
  type BlockHeader,
  type Bm25Parameters,
  type Candidate,
  type Corpus,
  judgeRound,
  planEssentialRound,
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
  /** Postings the first round reads: the heaviest blocks, for a first k-th score. */
  readonly firstRoundPostings: number;
  /** Candidates MaxScore's round completes exactly at most; past that, every block is scored. */
  readonly essentialCompletions: number;
  /**
   * What completing a candidate from its lexemes costs, in postings scored (~20 µs against ~0.6 µs
   * on the scale corpus, ~135 lexemes a chunk): MaxScore's round is tried only when the postings it
   * leaves unread outweigh the completions it may need.
   */
  readonly completionCostInPostings: number;
}

export const BM25_TUNING: Bm25Tuning = {
  firstRoundPostings: 1_024,
  essentialCompletions: 2_048,
  completionCostInPostings: 32,
};
/** Round 1 is tried only for queries with more postings than this many times what it reads. */
const ROUND_ONE_WORTHWHILE = 8;

export interface Bm25Outcome {
  readonly hits: LegHit[];
  /**
   * Which path answered: certified by the first round (the heaviest blocks), by MaxScore's round (the
   * essential terms), every block, or the filtered chunks themselves.
   */
  readonly path: "early" | "essential" | "exhaustive" | "filtered";
}

/**
 * Okapi BM25 (Lucene's idf, ln(1 + (N − df + 0.5) / (df + 0.5))) over the query's lexemes, OR-ed,
 * exact: the same top k as scoring every posting. A first round reads only the heaviest blocks and
 * stops there when that certifies the top k (bm25-plan.ts); otherwise every block is scored.
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
  const { firstRoundPostings, essentialCompletions, completionCostInPostings } = { ...BM25_TUNING, ...tuning };
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
  const postings = blocks.reduce((sum, b) => sum + b.postings, 0);
  if (postings > ROUND_ONE_WORTHWHILE * firstRoundPostings) {
    const first = planRound(blocks, s, firstRoundPostings);
    const one = judgeRound(await readRound(db, scope, s, first, limit), limit, k, first);
    if (one.certified) return { hits: one.hits, path: "early" };
    // Round 2, MaxScore's: the first round's k-th score is a floor; the common terms are not read.
    const essential = one.threshold > 0 ? planEssentialRound(blocks, s, first, one.threshold) : undefined;
    const completions = Math.max(limit, essentialCompletions);
    if (
      essential &&
      !essential.exhaustive &&
      postings - postingsOf(blocks, essential) > completionCostInPostings * completions
    ) {
      // A little below θ: the chunk that scored θ must not be lost to rounding in its upper bound.
      const candidates = await readRound(db, scope, s, essential, completions, one.threshold * (1 - 1e-9));
      const two = judgeRound(candidates, completions, k, essential);
      if (two.certified) return { hits: two.hits, path: "essential" };
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

/** Postings a round reads. */
function postingsOf(blocks: readonly BlockHeader[], round: Round): number {
  const read = new Set(round.blockIds);
  return blocks.reduce((sum, b) => sum + (read.has(b.blockId) ? b.postings : 0), 0);
}

async function bm25Statistics(
  db: Kysely<Database>,
  scope: SearchScope,
  query: string,
): Promise<{ terms: TermStatistics[]; blocks: BlockHeader[]; corpus: Corpus }> {
  const collections = [...scope.collectionIds];
  // One index-only scan of the block headers of the query's terms, with the deletions per term and
  // the collections' N and total length.
  const { rows } = await sql<{
    term: string;
    qtf: number;
    block_id: string | null;
    postings: number | null;
    max_tf: number | null;
    min_dl: number | null;
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
    SELECT q.term, q.qtf, b.block_id, b.postings, b.max_tf, b.min_dl, d.deleted, corpus.n, corpus.total_length
    FROM query_terms q CROSS JOIN corpus
    LEFT JOIN deletions d USING (term)
    LEFT JOIN bm25_blocks b
      ON b.term = q.term AND b.collection_id = any(${collections}::uuid[]) AND b.tenant_id = ${scope.tenantId}::uuid
  `.execute(db);
  const n = Number(rows[0]?.n ?? 0);
  const corpus = { n, avgdl: n > 0 ? Number(rows[0]?.total_length ?? 0) / n : 1 };
  const perTerm = new Map<string, { qtf: number; postings: number; dead: number }>();
  const blocks: BlockHeader[] = [];
  for (const r of rows) {
    const term = perTerm.get(r.term) ?? { qtf: r.qtf, postings: 0, dead: Number(r.deleted ?? 0) };
    perTerm.set(r.term, term);
    if (r.block_id === null) continue;
    term.postings += r.postings ?? 0;
    blocks.push({
      term: r.term,
      blockId: r.block_id,
      postings: r.postings ?? 0,
      maxTf: r.max_tf ?? 0,
      minDl: r.min_dl ?? 0,
    });
  }
  const terms = [...perTerm].map(([term, t]) => ({ term, qtf: t.qtf, df: t.postings - t.dead, dead: t.dead }));
  return { terms, blocks, corpus };
}

/** The query's weights as a relation w(term, weight, unread) for the SQL below. */
function weightsRelation(s: Scoring, unread: ReadonlyMap<string, number>): RawBuilder<unknown> {
  const terms = [...s.weights.keys()];
  return sql`unnest(${terms}::text[], ${terms.map((t) => s.weights.get(t) ?? 0)}::float8[],
                    ${terms.map((t) => unread.get(t) ?? 0)}::float8[]) AS w(term, weight, unread)`;
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
  const w = weightsRelation(s, round.unread);
  const live = db
    .selectFrom("chunks as c")
    .select((round.exhaustive ? sql<number>`cand.upper` : exactScore(s, w, sql`(SELECT cand.dl)`)).as("score"))
    .where((eb) => eb.and([eb("c.id", "=", sql<string>`cand.chunk_id`), chunkConditions(eb, scope, scope.filter)]));
  const { rows } = await sql<{ chunk_id: string; upper: number; score: number | null }>`
    WITH postings AS (
      SELECT b.term, p.chunk_id, p.tf, p.dl
      FROM bm25_blocks b CROSS JOIN LATERAL unnest(b.chunk_ids, b.tfs, b.dls) AS p(chunk_id, tf, dl)
      WHERE b.collection_id = any(${[...scope.collectionIds]}::uuid[]) AND b.tenant_id = ${scope.tenantId}::uuid
        AND b.term = any(${[...s.weights.keys()]}::text[]) AND b.block_id = any(${round.blockIds}::bigint[])
    ),
    bounded AS (
      SELECT p.chunk_id, max(p.dl) AS dl,
             sum(w.weight * p.tf / (p.tf + ${s.fixed}::float8 + ${s.perLength}::float8 * p.dl))
               + ${round.unseenBound}::float8 - sum(w.unread) AS upper
      FROM postings p JOIN ${w} USING (term)
      GROUP BY p.chunk_id
    ),
    candidates AS (
      SELECT chunk_id, dl, upper FROM bounded
      WHERE upper >= ${floor}::float8
      ORDER BY upper DESC, chunk_id
      ${limit === null ? sql`` : sql`LIMIT ${limit + 1}`}
    )
    SELECT cand.chunk_id, cand.upper, live.score
    FROM candidates cand LEFT JOIN LATERAL (${live}) AS live ON true
    ORDER BY cand.upper DESC, cand.chunk_id
  `.execute(db);
  return rows.map((r) => ({ chunkId: String(r.chunk_id), upper: r.upper, score: r.score }));
}

/** Exhaustive over the filtered set: every chunk passing the filters that holds a query term. */
async function scoreFilteredChunks(db: Kysely<Database>, scope: SearchScope, s: Scoring, k: number): Promise<LegHit[]> {
  const w = weightsRelation(s, new Map());
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
