import {
  type Bm25Parameters,
  type LengthNormalisation,
  lengthNormalisation,
  termWeight,
} from "../postings/bm25-weight.ts";

/**
 * Exact BM25 top-k with early termination over blocked postings: the arithmetic and the decisions,
 * apart from the SQL that reads the blocks (bm25.repository.ts).
 *
 * Every block carries the largest tf and the smallest chunk length among its postings. BM25's term
 * weight grows with tf and shrinks with length, so weight(max_tf, min_dl) at the current average
 * length bounds every posting in the block — exactly, whatever the statistics were when it was
 * written. A query reads its blocks heaviest bound first. After a round, a chunk seen in no read
 * block scores at most Σ over terms of the heaviest unread bound; a chunk seen in some scores at most
 * its exact partial sum plus the unread bounds of the terms it was not seen in. Candidates are
 * completed exactly (from their own lexemes) in order of that upper bound; when the k-th exact score
 * reaches both the unseen bound and the bound of the first candidate not completed, no other chunk
 * can enter the top k: the result is certified. Otherwise the next round reads deeper.
 *
 * Deeper rounds generalise MaxScore (Turtle & Flood): any k chunks' exact scores give a floor θ for
 * the final k-th score. If each term is read down to where its unread bounds sum, over the terms, to
 * less than θ, a chunk seen in no read block cannot reach the top k; the chunks seen are completed in
 * order of their bounds until the next bound is below the k-th exact score. MaxScore reads a term whole
 * or not at all; a cut round also stops part-way down a term whose bounds fall (tf 1 in long chunks),
 * which is most of a mid-frequency term's postings.
 */
export interface BlockHeader {
  readonly term: string;
  readonly blockId: string;
  readonly postings: number;
  readonly maxTf: number;
  readonly minDl: number;
}

export interface TermStatistics {
  readonly term: string;
  /** Occurrences of the lexeme in the query. */
  readonly qtf: number;
  /** Postings of live chunks: block postings minus recorded deletions. */
  readonly df: number;
  /** Postings of deleted chunks still in blocks (dropped by compaction). */
  readonly dead: number;
}

export interface Corpus {
  /** Chunks in the scope's collections. */
  readonly n: number;
  readonly avgdl: number;
}

/** The per-query constants of BM25: weight_t · termWeight(tf, dl). */
export interface Scoring extends LengthNormalisation {
  /** qtf · idf · (k1 + 1) per term. */
  readonly weights: ReadonlyMap<string, number>;
}

export function scoring(terms: readonly TermStatistics[], corpus: Corpus, params: Bm25Parameters): Scoring {
  const weights = new Map<string, number>();
  for (const t of terms) {
    if (t.df <= 0) continue;
    const idf = Math.log(1 + (corpus.n - t.df + 0.5) / (t.df + 0.5));
    weights.set(t.term, t.qtf * idf * (params.k1 + 1));
  }
  return { weights, ...lengthNormalisation(params, corpus.avgdl) };
}

/** The most a posting of this block can add to a chunk's score. */
export function blockBound(block: BlockHeader, s: Scoring): number {
  const weight = s.weights.get(block.term) ?? 0;
  return weight * termWeight(block.maxTf, block.minDl, s);
}

export interface Round {
  /** Blocks to read, across the query's terms. */
  readonly blocks: readonly BlockHeader[];
  /** Per term, the largest bound among its unread blocks (0 when all are read). */
  readonly unread: ReadonlyMap<string, number>;
  /** Σ of unread: the most a chunk seen in no read block can score. */
  readonly unseenBound: number;
  readonly exhaustive: boolean;
}

/** The blocks with the heaviest bounds, until `budget` postings; everything when the budget covers it. */
export function planRound(blocks: readonly BlockHeader[], s: Scoring, budget: number): Round {
  const ranked = blocks
    .map((block) => ({ block, bound: blockBound(block, s) }))
    .filter((b) => b.bound > 0)
    .sort((a, b) => b.bound - a.bound);
  const read: BlockHeader[] = [];
  const unread = new Map<string, number>();
  let postings = 0;
  for (const { block, bound } of ranked) {
    if (postings < budget) {
      read.push(block);
      postings += block.postings;
    } else if (!unread.has(block.term)) {
      unread.set(block.term, bound); // ranked: the first unread block of a term is its heaviest
    }
  }
  const unseenBound = [...unread.values()].reduce((sum, v) => sum + v, 0);
  return { blocks: read, unread, unseenBound, exhaustive: unread.size === 0 };
}

export interface Candidate {
  readonly chunkId: string;
  /** Exact partial sum + unread bounds of the terms it was not seen in. */
  readonly upper: number;
  /** Exact score, or null when the chunk is gone or fails the filters. */
  readonly score: number | null;
}

export interface RoundOutcome {
  readonly hits: { chunkId: string; score: number }[];
  readonly certified: boolean;
  /** The k-th exact score among the completed candidates (0 with fewer than k): a floor for the final one. */
  readonly threshold: number;
}

/**
 * The top k of a round's completed candidates (the `limit` with the highest upper bounds, in that
 * order), and whether nothing outside them can still enter it.
 */
export function judgeRound(candidates: readonly Candidate[], limit: number, k: number, round: Round): RoundOutcome {
  const completed = candidates.slice(0, limit);
  const hits = completed
    .filter((c): c is Candidate & { score: number } => c.score !== null)
    .map((c) => ({ chunkId: c.chunkId, score: c.score }))
    .sort((a, b) => b.score - a.score || compareIds(a.chunkId, b.chunkId))
    .slice(0, k);
  const threshold = hits.length === k ? (hits.at(-1)?.score ?? 0) : 0;
  const nextUpper = candidates.length > limit ? (candidates[limit]?.upper ?? 0) : 0;
  const certified =
    (round.exhaustive || round.unseenBound <= threshold) && (candidates.length <= limit || nextUpper <= threshold);
  return { hits, certified, threshold };
}

/** Chunk ids are bigints in text: shorter is smaller, then lexical. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * A deeper round after `read`: per term, how deep to read its blocks (heaviest first) so that the
 * unread bounds sum to less than `target` — a chunk seen in no read block then scores below it —
 * reading as few postings as that takes.
 * MaxScore is the case where every term is read whole or not at all; this also cuts a term part-way,
 * where its bounds fall (tf 1, long chunks). Greedy on each term's lower convex hull of (postings
 * read, bound left): the steepest fall of the unseen bound per posting first.
 */
export function planCutRound(blocks: readonly BlockHeader[], s: Scoring, read: Round, target: number): Round {
  const alreadyRead = new Set(read.blocks.map((b) => b.blockId));
  const unreadByTerm = new Map<string, { block: BlockHeader; bound: number }[]>();
  for (const block of blocks) {
    const bound = blockBound(block, s);
    if (alreadyRead.has(block.blockId) || bound <= 0) continue;
    const list = unreadByTerm.get(block.term) ?? [];
    unreadByTerm.set(block.term, list);
    list.push({ block, bound });
  }
  interface Step {
    readonly term: string;
    readonly depth: number;
    readonly fall: number;
    readonly postings: number;
  }
  const steps: Step[] = [];
  const depth = new Map<string, number>();
  let unseenBound = 0;
  for (const [term, list] of unreadByTerm) {
    list.sort((a, b) => b.bound - a.bound);
    depth.set(term, 0);
    unseenBound += list[0]?.bound ?? 0;
    // Points (postings read, bound of the heaviest block left) after reading the first j blocks.
    const hull: { postings: number; bound: number; depth: number }[] = [];
    let postings = 0;
    for (let j = 0; j <= list.length; j++) {
      const point = { postings, bound: list[j]?.bound ?? 0, depth: j };
      for (;;) {
        const [o, a] = [hull.at(-2), hull.at(-1)];
        if (!o || !a) break;
        const turn =
          (a.postings - o.postings) * (point.bound - o.bound) - (a.bound - o.bound) * (point.postings - o.postings);
        if (turn > 0) break;
        hull.pop();
      }
      hull.push(point);
      postings += list[j]?.block.postings ?? 0;
    }
    for (let i = 1; i < hull.length; i++) {
      const [from, to] = [hull[i - 1], hull[i]] as const;
      if (from && to)
        steps.push({ term, depth: to.depth, fall: from.bound - to.bound, postings: to.postings - from.postings });
    }
  }
  // Steepest first; a term's own hull steps get less steep, so they come in their order.
  steps.sort((a, b) => b.fall / Math.max(b.postings, 1) - a.fall / Math.max(a.postings, 1) || a.depth - b.depth);
  for (const step of steps) {
    if (unseenBound < target) break;
    unseenBound -= step.fall;
    depth.set(step.term, Math.max(depth.get(step.term) ?? 0, step.depth));
  }
  const toRead = [...read.blocks];
  const unread = new Map<string, number>();
  for (const [term, list] of unreadByTerm) {
    const readTo = depth.get(term) ?? 0;
    for (const { block } of list.slice(0, readTo)) toRead.push(block);
    const left = list[readTo]?.bound ?? 0;
    if (left > 0) unread.set(term, left);
  }
  const exactUnseen = [...unread.values()].reduce((sum, v) => sum + v, 0);
  return { blocks: toRead, unread, unseenBound: exactUnseen, exhaustive: unread.size === 0 };
}
