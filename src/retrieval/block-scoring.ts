import { type LengthNormalisation, termWeight } from "../postings/bm25-weight.ts";
import { type DecodedBlock, decodeInto } from "../postings/postings-codec.ts";
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
 * Chunk ids are numbered by id − the smallest id when the ids span at most this many times the
 * postings read (a collection's chunks are mostly consecutive ids); beyond that, by a map.
 */
const DENSE_SPAN_PER_POSTING = 8;
/** Chunk slots summed at a time: 2^15 sums and lengths, 384 KB, stay in a core's cache. */
const BUCKET_BITS = 15;
/** Up to this many slots (3 MB of sums and lengths) one bucket does: sorting into buckets would cost more. */
const ONE_BUCKET_UP_TO = 1 << 18;

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
  let largest = 0; // bytes: a posting takes at least 3, so as many postings have room
  for (const b of blocks) {
    lo = Math.min(lo, b.firstChunk);
    hi = Math.max(hi, b.lastChunk);
    largest = Math.max(largest, b.data.length);
  }
  const sums = new ChunkSums(lo, hi, postings);
  // One buffer of decoded postings, reused block after block.
  const decoded: DecodedBlock = {
    chunkIds: new Float64Array(largest),
    tfs: new Uint32Array(largest),
    dls: new Uint32Array(largest),
  };
  let sinceYield = 0;
  for (const block of blocks) {
    const count = decodeInto(block.data, block.firstChunk, decoded);
    sums.addBlock(decoded, count, s.weights.get(block.term) ?? 0, round.unread.get(block.term) ?? 0, s);
    sinceYield += count;
    if (sinceYield >= POSTINGS_PER_SLICE) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  }
  return await sums.highest(round.unseenBound, limit, floor);
}

/**
 * Per-chunk sums of a round's postings. Postings are logged as they are decoded (slot, value,
 * length) and summed afterwards bucket by bucket of 2^BUCKET_BITS chunk slots: summing straight
 * into arrays over a million chunk ids misses the CPU's caches at nearly every posting (measured ~3×
 * the cost a posting at 1M chunks), a bucket's sums stay in cache. A smaller range is one bucket. A slot is the chunk id − the smallest
 * id for a compact range of ids, else a number given by a map. Each chunk's values are summed in
 * the order they were read, so sums are the same as summed directly.
 */
class ChunkSums {
  private readonly lo: number;
  private readonly slots: Map<number, number> | null;
  /** Chunk ids by slot, for a map's slots (a dense slot is the id − lo). */
  private readonly ids: Float64Array | null;
  private readonly span: number;
  private readonly bucketBits: number;
  private readonly logSlots: Int32Array;
  private readonly logValues: Float64Array;
  private readonly logLengths: Uint32Array;
  private logged = 0;

  constructor(lo: number, hi: number, postings: number) {
    const span = hi - lo + 1;
    const dense = span <= DENSE_SPAN_PER_POSTING * postings + 65_536;
    this.lo = lo;
    this.span = dense ? span : postings;
    this.bucketBits = this.span <= ONE_BUCKET_UP_TO ? Math.max(1, Math.ceil(Math.log2(this.span))) : BUCKET_BITS;
    this.slots = dense ? null : new Map();
    this.ids = dense ? null : new Float64Array(postings);
    this.logSlots = new Int32Array(postings);
    this.logValues = new Float64Array(postings);
    this.logLengths = new Uint32Array(postings);
  }

  /** Logs weight · termWeight(tf, dl) − unread for each of a block's `n` decoded postings. */
  addBlock(block: DecodedBlock, n: number, weight: number, unread: number, norm: LengthNormalisation): void {
    const { chunkIds, tfs, dls } = block;
    const { slots, ids, lo, logSlots, logValues, logLengths } = this;
    let at = this.logged;
    for (let i = 0; i < n; i++) {
      const chunkId = chunkIds[i] as number;
      let slot: number;
      if (slots === null || ids === null) {
        slot = chunkId - lo;
      } else {
        slot = slots.get(chunkId) ?? slots.size;
        if (slot === slots.size) {
          slots.set(chunkId, slot);
          ids[slot] = chunkId;
        }
      }
      const tf = tfs[i] as number;
      const dl = dls[i] as number;
      logSlots[at] = slot;
      logValues[at] = weight * termWeight(tf, dl, norm) - unread;
      logLengths[at] = dl;
      at++;
    }
    this.logged = at;
  }

  /**
   * The `limit` highest sums + `offset` at or above `floor` (all when null), highest first, ties by
   * id; yielding to the event loop between buckets every POSTINGS_PER_SLICE postings.
   */
  async highest(offset: number, limit: number | null, floor: number): Promise<ChunkBound[]> {
    const n = this.logged;
    const bits = this.bucketBits;
    const buckets = Math.ceil(this.span / 2 ** bits);
    const { starts, order } = orderByBucket(this.logSlots, n, bits, buckets);
    const slotsPerBucket = 2 ** bits;
    const sums = new Float64Array(slotsPerBucket);
    const lengths = new Uint32Array(slotsPerBucket);
    const touched = new Int32Array(slotsPerBucket);
    const keep = new TopBounds(limit ?? n);
    let sinceYield = 0;
    for (let b = 0; b < buckets; b++) {
      if (sinceYield >= POSTINGS_PER_SLICE) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
      sinceYield += (starts[b + 1] as number) - (starts[b] as number);
      let count = 0;
      for (let k = starts[b] as number; k < (starts[b + 1] as number); k++) {
        const i = order === null ? k : (order[k] as number);
        const local = (this.logSlots[i] as number) & (slotsPerBucket - 1);
        if (lengths[local] === 0) {
          lengths[local] = this.logLengths[i] as number;
          touched[count++] = local;
        }
        sums[local] = (sums[local] as number) + (this.logValues[i] as number);
      }
      for (let t = 0; t < count; t++) {
        const local = touched[t] as number;
        const slot = b * slotsPerBucket + local;
        const upper = (sums[local] as number) + offset;
        if (upper >= floor) {
          keep.offer(this.ids === null ? slot + this.lo : (this.ids[slot] as number), lengths[local] as number, upper);
        }
        sums[local] = 0;
        lengths[local] = 0;
      }
    }
    return keep.sorted();
  }
}

/**
 * A stable counting sort of the first `n` logged slots by bucket (slot >>> bits): where each bucket
 * starts in `order` (and the end), and `order` the log's positions bucket by bucket — null for one
 * bucket, where the log's own order is it. Each chunk's values keep their order.
 */
function orderByBucket(
  slots: Int32Array,
  n: number,
  bits: number,
  buckets: number,
): { starts: Int32Array; order: Int32Array | null } {
  const starts = new Int32Array(buckets + 1);
  if (buckets === 1) {
    starts[1] = n;
    return { starts, order: null };
  }
  for (let i = 0; i < n; i++) {
    const b = ((slots[i] as number) >>> bits) + 1;
    starts[b] = (starts[b] as number) + 1;
  }
  for (let b = 0; b < buckets; b++) starts[b + 1] = (starts[b + 1] as number) + (starts[b] as number);
  const next = starts.slice(0, buckets);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const b = (slots[i] as number) >>> bits;
    const at = next[b] as number;
    order[at] = i;
    next[b] = at + 1;
  }
  return { starts, order };
}

/** The `capacity` best bounds offered (highest upper, then lowest id), kept in a min-heap of the worst. */
class TopBounds {
  readonly #heap: ChunkBound[] = [];
  constructor(readonly capacity: number) {}

  offer(chunkId: number, dl: number, upper: number): void {
    if (this.capacity <= 0) return;
    const heap = this.#heap;
    const worst = heap[0];
    if (heap.length < this.capacity) {
      heap.push({ chunkId, dl, upper });
      this.#up(heap.length - 1);
    } else if (worst && ranksBefore(upper, chunkId, worst)) {
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
  return ranksBefore(a.upper, a.chunkId, b);
}

function ranksBefore(upper: number, chunkId: number, b: ChunkBound): boolean {
  return upper > b.upper || (upper === b.upper && chunkId < b.chunkId);
}

/** Lets the event loop run what is waiting (other requests' I/O) before going on. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
