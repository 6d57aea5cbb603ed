import { forEachPosting } from "../postings/postings-codec.ts";
import { termWeight } from "../postings/bm25-weight.ts";
import type { Round, Scoring } from "./bm25-plan.ts";

/** A postings block as read from bm25_blocks: its term, chunk-id range and packed postings. */
export interface FetchedBlock {
  readonly term: string;
  readonly firstChunk: number;
  readonly lastChunk: number;
  readonly data: Uint8Array;
}

/** A chunk seen in a round's blocks: its length and the most it can score (see bm25-plan.ts). */
export interface ChunkBound {
  readonly chunkId: number;
  readonly dl: number;
  readonly upper: number;
}

/** Postings summed between two yields to the event loop (a few milliseconds of work). */
const POSTINGS_PER_SLICE = 65_536;
/**
 * Chunk ids are summed into arrays indexed by id − the smallest id when the ids span at most this
 * many times the postings read (a collection's chunks are mostly consecutive ids); beyond that, by a map.
 */
const DENSE_SPAN_PER_POSTING = 8;

/**
 * Sums a round's postings per chunk in the application: each chunk's exact partial score over the
 * blocks read, minus the unread bounds of the terms it was seen in, plus the round's unseen bound —
 * its upper bound. Returns the `limit` highest bounds (every one when null), none below `floor`, by
 * bound descending then chunk id. Yields to the event loop between slices of postings, so a query
 * over a million postings does not hold it.
 */
export async function chunkBounds(
  blocks: readonly FetchedBlock[],
  postings: number,
  s: Scoring,
  round: Round,
  limit: number | null,
  floor: number,
): Promise<ChunkBound[]> {
  if (blocks.length === 0) return [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const b of blocks) {
    lo = Math.min(lo, b.firstChunk);
    hi = Math.max(hi, b.lastChunk);
  }
  const sums = new ChunkSums(lo, hi, postings);
  let sinceYield = 0;
  for (const block of blocks) {
    const weight = s.weights.get(block.term) ?? 0;
    const unread = round.unread.get(block.term) ?? 0;
    forEachPosting(block.data, block.firstChunk, (chunkId, tf, dl) => {
      sums.add(chunkId, dl, weight * termWeight(tf, dl, s) - unread);
      sinceYield++;
    });
    if (sinceYield >= POSTINGS_PER_SLICE) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return sums.highest(round.unseenBound, limit, floor);
}

/** Per-chunk sums over a range of chunk ids: dense arrays for a compact range, else a map to slots. */
class ChunkSums {
  readonly #lo: number;
  readonly #slots: Map<number, number> | null;
  readonly #sums: Float64Array;
  readonly #lengths: Uint32Array;
  readonly #ids: Float64Array;
  readonly #touched: Int32Array;
  #count = 0;

  constructor(lo: number, hi: number, postings: number) {
    const span = hi - lo + 1;
    const dense = span <= DENSE_SPAN_PER_POSTING * postings + 65_536;
    const size = dense ? span : postings;
    this.#lo = lo;
    this.#slots = dense ? null : new Map();
    this.#sums = new Float64Array(size);
    this.#lengths = new Uint32Array(size);
    this.#ids = new Float64Array(size);
    this.#touched = new Int32Array(Math.min(size, postings));
  }

  add(chunkId: number, dl: number, value: number): void {
    let slot: number;
    if (this.#slots === null) {
      slot = chunkId - this.#lo;
    } else {
      slot = this.#slots.get(chunkId) ?? -1;
      if (slot < 0) {
        slot = this.#slots.size;
        this.#slots.set(chunkId, slot);
      }
    }
    if (this.#lengths[slot] === 0) {
      this.#lengths[slot] = dl;
      this.#ids[slot] = chunkId;
      this.#touched[this.#count++] = slot;
    }
    this.#sums[slot] = (this.#sums[slot] ?? 0) + value;
  }

  /** The `limit` highest sums + `offset` at or above `floor` (all when null), highest first, ties by id. */
  highest(offset: number, limit: number | null, floor: number): ChunkBound[] {
    const keep = new TopBounds(limit ?? this.#count);
    for (let i = 0; i < this.#count; i++) {
      const slot = this.#touched[i] as number;
      const upper = (this.#sums[slot] as number) + offset;
      if (upper >= floor) keep.offer(this.#ids[slot] as number, this.#lengths[slot] as number, upper);
    }
    return keep.sorted();
  }
}

/** The `capacity` best bounds offered (highest upper, then lowest id), kept in a min-heap of the worst. */
class TopBounds {
  readonly #heap: ChunkBound[] = [];
  constructor(readonly capacity: number) {}

  offer(chunkId: number, dl: number, upper: number): void {
    if (this.capacity <= 0) return;
    const heap = this.#heap;
    if (heap.length < this.capacity) {
      heap.push({ chunkId, dl, upper });
      this.#up(heap.length - 1);
    } else if (better({ chunkId, dl, upper }, heap[0] as ChunkBound)) {
      heap[0] = { chunkId, dl, upper };
      this.#down(0);
    }
  }

  sorted(): ChunkBound[] {
    return [...this.#heap].sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  }

  #up(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!better(heap[parent] as ChunkBound, heap[i] as ChunkBound)) break;
      [heap[parent], heap[i]] = [heap[i] as ChunkBound, heap[parent] as ChunkBound];
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const [left, right] = [2 * i + 1, 2 * i + 2];
      let worst = i;
      if (left < heap.length && better(heap[worst] as ChunkBound, heap[left] as ChunkBound)) worst = left;
      if (right < heap.length && better(heap[worst] as ChunkBound, heap[right] as ChunkBound)) worst = right;
      if (worst === i) return;
      [heap[worst], heap[i]] = [heap[i] as ChunkBound, heap[worst] as ChunkBound];
      i = worst;
    }
  }
}

/** Ranks before: a higher bound, or the same bound and a lower chunk id. */
function better(a: ChunkBound, b: ChunkBound): boolean {
  return a.upper > b.upper || (a.upper === b.upper && a.chunkId < b.chunkId);
}
