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

/** Calls `visit` for each posting of an encoded block, without allocating per posting. */
export function forEachPosting(
  data: Uint8Array,
  firstChunk: number,
  visit: (chunkId: number, tf: number, dl: number) => void,
): void {
  const reader = { data, at: 0 };
  let chunkId = firstChunk;
  while (reader.at < data.length) {
    chunkId += readVarint(reader);
    const tf = readVarint(reader);
    const dl = readVarint(reader);
    visit(chunkId, tf, dl);
  }
}

export function decodeBlock(data: Uint8Array, firstChunk: number, postings: number): DecodedBlock {
  const block = {
    chunkIds: new Float64Array(postings),
    tfs: new Uint32Array(postings),
    dls: new Uint32Array(postings),
  };
  let i = 0;
  forEachPosting(data, firstChunk, (chunkId, tf, dl) => {
    if (i >= postings) throw new Error(`a postings block holds more than its ${postings} postings`);
    block.chunkIds[i] = chunkId;
    block.tfs[i] = tf;
    block.dls[i] = dl;
    i++;
  });
  if (i !== postings) throw new Error(`a postings block holds ${i} postings, its header says ${postings}`);
  return block;
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

function readVarint(reader: { data: Uint8Array; at: number }): number {
  const { data, at } = reader;
  const b0 = data[at] ?? 0;
  if (b0 < 0x80) {
    reader.at = at + 1;
    return b0;
  }
  if (b0 < 0xc0) {
    reader.at = at + 2;
    return ((b0 & 0x3f) << 8) | (data[at + 1] ?? 0);
  }
  if (b0 < 0xe0) {
    reader.at = at + 4;
    return (b0 & 0x1f) * 0x1000000 + (((data[at + 1] ?? 0) << 16) | ((data[at + 2] ?? 0) << 8) | (data[at + 3] ?? 0));
  }
  reader.at = at + 9;
  let value = 0;
  for (let i = 1; i <= 8; i++) value = value * 256 + (data[at + i] ?? 0);
  return value;
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
