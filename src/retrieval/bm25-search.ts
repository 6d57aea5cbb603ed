import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import type { Bm25Parameters } from "../postings/bm25-weight.ts";
import {
  type BlockHeader,
  type Candidate,
  judgeRound,
  planCutRound,
  planRound,
  type Round,
  type Scoring,
  scoring,
} from "./bm25-plan.ts";
import {
  bm25Statistics,
  candidateBounds,
  completeCandidates,
  readRound,
  scoreFilteredChunks,
} from "./bm25.repository.ts";
import type { LegHit } from "./fusion.ts";
import { isFiltered, type SearchScope } from "./search.repository.ts";

/** How far early termination goes before scoring every block; the defaults were measured on the scale corpus. */
export interface Bm25Tuning {
  /**
   * A query with at most this many postings, in collections of at most `everyBlockCorpusUpTo`
   * chunks, reads every block at once: summed in the application, a posting costs ~0.1 µs read and
   * scored, against ~15 µs for each candidate a round must complete from its lexemes. Per chunk sums
   * over a larger collection spill out of the CPU's caches (~3× the cost a posting at 1M chunks),
   * and there early termination wins whatever the query.
   */
  readonly everyBlockUpTo: number;
  readonly everyBlockCorpusUpTo: number;
  /** Postings the first round reads: the heaviest blocks, for a first k-th score θ. */
  readonly firstRoundPostings: number;
  /**
   * The deeper rounds after it, as multiples of the best θ so far. A guess above 1 (the final k-th
   * score is often well above the first round's) reads fewer postings when right and costs another
   * round when wrong; with postings summed in the application, θ itself (1, always right) does best.
   */
  readonly floorGuesses: readonly number[];
  /**
   * Each deeper round reads until the unseen bound is this share of its target: lower reads more
   * postings but leaves fewer candidates above the target to complete.
   */
  readonly unseenShare: number;
  /** Candidates a deeper round may complete at most; past that it cannot certify. */
  readonly candidateLimit: number;
  /** Postings a deeper round must leave unread to be tried: one that does not certify costs what it read. */
  readonly worthwhileSkip: number;
}

export const BM25_TUNING: Bm25Tuning = {
  everyBlockUpTo: 150_000,
  everyBlockCorpusUpTo: 300_000,
  firstRoundPostings: 1_024,
  floorGuesses: [1],
  unseenShare: 0.7,
  candidateLimit: 8_192,
  worthwhileSkip: 65_536,
};

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
  const {
    everyBlockUpTo,
    everyBlockCorpusUpTo,
    firstRoundPostings,
    floorGuesses,
    unseenShare,
    candidateLimit,
    worthwhileSkip,
  } = {
    ...BM25_TUNING,
    ...tuning,
  };
  const { terms, blocks, corpus } = await bm25Statistics(db, scope, query);
  const s = scoring(terms, corpus, params);
  if (s.weights.size === 0 || k <= 0) return { hits: [], path: "early" };
  if (selectiveFilter) return { hits: await scoreFilteredChunks(db, scope, s, k), path: "filtered" };
  const filtered = isFiltered(scope);
  // Completed candidates in the first round: k, and room for deleted chunks (and, filtered, for failures).
  const dead = terms.reduce((sum, t) => sum + t.dead, 0);
  const limit = (filtered ? 8 : 2) * k + dead;
  // Round 1: the heaviest blocks of all terms — only for a query with very many postings: below that,
  // scoring every block costs less than rounds that may not certify (measured).
  const postings = postingsOf(blocks);
  if (postings > everyBlockUpTo || corpus.n > everyBlockCorpusUpTo) {
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
  const bounds = await candidateBounds(db, scope, s, round, limit, floor);
  const candidates: Candidate[] = bounds.map((b) => ({ chunkId: b.chunkId, upper: b.upper, score: null }));
  const scores: number[] = [];
  let completed = 0;
  for (let batch = 2 * k; completed < Math.min(limit, bounds.length); batch *= 2) {
    const next = bounds.slice(completed, Math.min(limit, completed + batch));
    const unknown = next.filter((b) => !known.has(b.chunkId));
    if (unknown.length > 0) {
      for (const [chunkId, score] of await completeCandidates(db, scope, s, unknown)) known.set(chunkId, score);
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
