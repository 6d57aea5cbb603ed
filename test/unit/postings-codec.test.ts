import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeBlock, encodeBlock, type Posting } from "../../src/postings/postings-codec.ts";

const posting = fc.record({
  chunkId: fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
  tf: fc.integer({ min: 1, max: 300 }),
  dl: fc.integer({ min: 1, max: 2 ** 31 }),
});

describe("the packed postings layout", () => {
  it("decodes what it encodes, in chunk-id order, whatever the gaps and values", () => {
    fc.assert(
      fc.property(fc.uniqueArray(posting, { minLength: 1, maxLength: 300, selector: (p) => p.chunkId }), (postings) => {
        const { firstChunk, lastChunk, data } = encodeBlock(postings);
        const sorted = [...postings].sort((a, b) => a.chunkId - b.chunkId);
        expect(firstChunk).toBe(sorted[0]?.chunkId);
        expect(lastChunk).toBe(sorted.at(-1)?.chunkId);
        const decoded = decodeBlock(data, firstChunk, postings.length);
        const back: Posting[] = Array.from(decoded.chunkIds, (chunkId, i) => ({
          chunkId,
          tf: decoded.tfs[i] as number,
          dl: decoded.dls[i] as number,
        }));
        expect(back).toEqual(sorted);
      }),
    );
  });

  it("spends one byte below 2^7, two below 2^14, four below 2^29, nine above", () => {
    const size = (gap: number) =>
      encodeBlock([
        { chunkId: 1, tf: 1, dl: 1 },
        { chunkId: 1 + gap, tf: 1, dl: 1 },
      ]).data.length -
      3 -
      2;
    expect([127, 128, 16_383, 16_384, 2 ** 29 - 1, 2 ** 29].map(size)).toEqual([1, 2, 2, 4, 4, 9]);
  });

  it("refuses a block whose header disagrees with its postings", () => {
    const { data } = encodeBlock([
      { chunkId: 5, tf: 1, dl: 3 },
      { chunkId: 9, tf: 2, dl: 4 },
    ]);
    expect(() => decodeBlock(data, 5, 3)).toThrow(/holds 2 postings, its header says 3/);
    expect(() => decodeBlock(data, 5, 1)).toThrow(/more postings than its header says/);
  });
});
