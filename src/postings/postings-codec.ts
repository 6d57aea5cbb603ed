/**
 * The byte layout of a BM25 postings block (`bm25_blocks.data`), read and written here and written
 * by SQL too (`pgrag_varint`, migration 30): per posting, in chunk-id order, the gap from the
 * previous chunk id (the first from the block's `first_chunk`, so 0), the term frequency and the
 * chunk's length, each a prefix varint —
 *
 *   0xxxxxxx                      values below 2^7, one byte
 *   10xxxxxx xxxxxxxx             below 2^14, two bytes, big-endian
 *   110xxxxx + 3 bytes            below 2^29, four bytes
 *   11100000 + 8 bytes            anything else, the value as a big-endian int8
 *
 * Gaps in a block of a few hundred postings are mostly one or two bytes, term frequencies one, and
 * lengths two: about 5 bytes a posting against 16 in three integer arrays.
 */

import { type RawBuilder, sql } from "kysely";

export interface Posting {
  readonly chunkId: number;
  readonly tf: number;
  readonly dl: number;
}

/** A block's postings, decoded into parallel arrays (ids as numbers: chunk ids stay below 2^53). */
export interface DecodedBlock {
  readonly chunkIds: Float64Array;
  readonly tfs: Uint32Array;
  readonly dls: Uint32Array;
}

/**
 * Decodes an encoded block into `into` (whose arrays must have room for its postings); returns its
 * number of postings. One tight loop, no call per posting: queries decode hundreds of thousands of
 * postings this way.
 */
export function decodeInto(data: Uint8Array, firstChunk: number, into: DecodedBlock): number {
  const { chunkIds, tfs, dls } = into;
  const end = data.length;
  let pos = 0;
  let i = 0;
  let chunkId = firstChunk;
  while (pos < end) {
    if (i >= chunkIds.length) throw new Error("a postings block holds more postings than its header says");
    for (let field = 0; field < 3; field++) {
      const b0 = data[pos] as number;
      let value: number;
      if (b0 < 0x80) {
        value = b0;
        pos += 1;
      } else if (b0 < 0xc0) {
        value = ((b0 & 0x3f) << 8) | (data[pos + 1] as number);
        pos += 2;
      } else if (b0 < 0xe0) {
        value =
          (b0 & 0x1f) * 0x1000000 +
          (((data[pos + 1] as number) << 16) | ((data[pos + 2] as number) << 8) | (data[pos + 3] as number));
        pos += 4;
      } else {
        value = 0;
        for (let k = 1; k <= 8; k++) value = value * 256 + (data[pos + k] as number);
        pos += 9;
      }
      if (field === 0) chunkId += value;
      else if (field === 1) tfs[i] = value;
      else dls[i] = value;
    }
    chunkIds[i] = chunkId;
    i++;
  }
  return i;
}

export function decodeBlock(data: Uint8Array, firstChunk: number, postings: number): DecodedBlock {
  const block = {
    chunkIds: new Float64Array(postings),
    tfs: new Uint32Array(postings),
    dls: new Uint32Array(postings),
  };
  const end = decodeInto(data, firstChunk, block);
  if (end !== postings) throw new Error(`a postings block holds ${end} postings, its header says ${postings}`);
  return block;
}

/** A block's postings, decoded, one by one. */
export function* postingsIn(data: Uint8Array, firstChunk: number, postings: number): Generator<Posting> {
  const block = decodeBlock(data, firstChunk, postings);
  for (let i = 0; i < postings; i++) {
    yield { chunkId: block.chunkIds[i] as number, tf: block.tfs[i] as number, dl: block.dls[i] as number };
  }
}

/** Encodes postings (any order; written in chunk-id order) as a block: its first chunk and its bytes. */
export function encodeBlock(postings: readonly Posting[]): { firstChunk: number; lastChunk: number; data: Buffer } {
  const sorted = [...postings].sort((a, b) => a.chunkId - b.chunkId);
  const first = sorted[0];
  const last = sorted.at(-1);
  if (!first || !last) throw new Error("a postings block needs at least one posting");
  const out = Buffer.allocUnsafe(sorted.length * 27);
  let at = 0;
  let previous = first.chunkId;
  for (const p of sorted) {
    at = writeVarint(out, at, p.chunkId - previous);
    at = writeVarint(out, at, p.tf);
    at = writeVarint(out, at, p.dl);
    previous = p.chunkId;
  }
  return { firstChunk: first.chunkId, lastChunk: last.chunkId, data: Buffer.from(out.subarray(0, at)) };
}

/**
 * The columns (postings, max_tf, min_dl, first_chunk, last_chunk, data) of blocks aggregated from
 * rows with `chunk_id`, `tf`, `dl` and `gap` (the distance from the previous chunk id in the block, 0
 * for the first: see `gapInBlock`), in this layout.
 */
export const PACKED_BLOCK_COLUMNS = sql`
  count(*)::int, max(tf), min(dl), min(chunk_id), max(chunk_id),
  string_agg(pgrag_varint(gap) || pgrag_varint(tf) || pgrag_varint(dl), ''::bytea ORDER BY chunk_id)`;

/** A posting's distance from the previous chunk id of its block (`partition`), 0 for the first. */
export function gapInBlock(chunkId: RawBuilder<unknown>, partition: RawBuilder<unknown>): RawBuilder<number> {
  return sql<number>`${chunkId} - lag(${chunkId}, 1, ${chunkId}) OVER (PARTITION BY ${partition} ORDER BY ${chunkId})`;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode ${value} in a postings block`);
  if (value < 0x80) {
    out[at] = value;
    return at + 1;
  }
  if (value < 0x4000) {
    out[at] = 0x80 | (value >> 8);
    out[at + 1] = value & 0xff;
    return at + 2;
  }
  if (value < 0x20000000) {
    out[at] = 0xc0 | Math.floor(value / 0x1000000);
    out[at + 1] = (value >> 16) & 0xff;
    out[at + 2] = (value >> 8) & 0xff;
    out[at + 3] = value & 0xff;
    return at + 4;
  }
  out[at] = 0xe0;
  out.writeBigInt64BE(BigInt(value), at + 1);
  return at + 9;
}
