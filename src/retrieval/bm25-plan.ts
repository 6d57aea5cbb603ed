/**
 * Exact BM25 top-k with early termination over blocked postings: the arithmetic and the decisions,
 * apart from the SQL that reads the blocks (search.repository.ts).
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
 * The second round is MaxScore's (Turtle & Flood): the first round's k-th exact score θ is a floor
 * for the final one. Terms whose heaviest unread bounds sum to less than θ are non-essential: a chunk
 * holding only those (outside the blocks already read) cannot reach the top k. The round reads every
 * block of the essential terms — the rare, heavy ones — plus the first round's blocks, and completes
 * the candidates whose bound reaches θ from their own lexemes; the common terms' long postings are
 * never read.
 */
export interface Bm25Parameters {
  readonly k1: number;
  readonly b: number;
}

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

/** The per-query constants of BM25: weight_t · tf / (tf + fixed + perLength · dl). */
export interface Scoring {
  /** qtf · idf · (k1 + 1) per term. */
  readonly weights: ReadonlyMap<string, number>;
  readonly fixed: number;
  readonly perLength: number;
}

export function scoring(terms: readonly TermStatistics[], corpus: Corpus, params: Bm25Parameters): Scoring {
  const weights = new Map<string, number>();
  for (const t of terms) {
    if (t.df <= 0) continue;
    const idf = Math.log(1 + (corpus.n - t.df + 0.5) / (t.df + 0.5));
    weights.set(t.term, t.qtf * idf * (params.k1 + 1));
  }
  return {
    weights,
    fixed: params.k1 * (1 - params.b),
    perLength: (params.k1 * params.b) / Math.max(corpus.avgdl, 1e-9),
  };
}

/** The most a posting of this block can add to a chunk's score. */
export function blockBound(block: BlockHeader, s: Scoring): number {
  const weight = s.weights.get(block.term) ?? 0;
  return (weight * block.maxTf) / (block.maxTf + s.fixed + s.perLength * block.minDl);
}

export interface Round {
  /** Blocks to read, across the query's terms. */
  readonly blockIds: string[];
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
  const blockIds: string[] = [];
  const unread = new Map<string, number>();
  let postings = 0;
  for (const { block, bound } of ranked) {
    if (postings < budget) {
      blockIds.push(block.blockId);
      postings += block.postings;
    } else if (!unread.has(block.term)) {
      unread.set(block.term, bound); // ranked: the first unread block of a term is its heaviest
    }
  }
  const unseenBound = [...unread.values()].reduce((sum, v) => sum + v, 0);
  return { blockIds, unread, unseenBound, exhaustive: unread.size === 0 };
}

/**
 * MaxScore's round after `read` left θ = `threshold` as the k-th exact score: `read`'s blocks and
 * every block of the essential terms, the non-essential ones — the terms whose heaviest unread
 * blocks sum to less than θ, lightest first — left unread.
 */
export function planEssentialRound(blocks: readonly BlockHeader[], s: Scoring, read: Round, threshold: number): Round {
  const alreadyRead = new Set(read.blockIds);
  // Per term, its heaviest unread block's bound (0 once every block was read): one pass over the
  // headers, which at a million chunks are thousands per common term.
  const heaviestUnread = new Map<string, number>();
  for (const block of blocks) {
    const bound = alreadyRead.has(block.blockId) ? 0 : blockBound(block, s);
    heaviestUnread.set(block.term, Math.max(heaviestUnread.get(block.term) ?? 0, bound));
  }
  const lightestFirst = [...heaviestUnread].map(([term, bound]) => ({ term, bound })).sort((a, b) => a.bound - b.bound);
  const unread = new Map<string, number>();
  let unseenBound = 0;
  for (const { term, bound } of lightestFirst) {
    if (unseenBound + bound >= threshold) break;
    unseenBound += bound;
    if (bound > 0) unread.set(term, bound);
  }
  const blockIds = blocks
    .filter((b) => alreadyRead.has(b.blockId) || (!unread.has(b.term) && blockBound(b, s) > 0))
    .map((b) => b.blockId);
  return { blockIds, unread, unseenBound, exhaustive: unread.size === 0 };
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
