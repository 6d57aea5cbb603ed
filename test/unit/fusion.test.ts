import { describe, expect, it } from "vitest";
import { fuse, type LegHit } from "../../src/retrieval/fusion.ts";

const hits = (...ids: [string, number][]): LegHit[] => ids.map(([chunkId, score]) => ({ chunkId, score }));
const equal = { vector: 1, bm25: 1 };

describe("fuse", () => {
  it("adds reciprocal ranks across legs (RRF), and a chunk found by both legs beats one found by one", () => {
    const fused = fuse(
      { vector: hits(["1", 0.9], ["2", 0.8]), bm25: hits(["2", 12], ["3", 11]) },
      equal,
      { method: "rrf", k: 60 },
      10,
    );
    expect(fused.map((h) => h.chunkId)).toEqual(["2", "1", "3"]);
    expect(fused[0]?.score).toBeCloseTo(1 / 62 + 1 / 61);
    expect(fused[0]?.legs).toEqual({ vector: { rank: 2, score: 0.8 }, bm25: { rank: 1, score: 12 } });
    expect(fused[1]?.legs.bm25).toEqual({ rank: null, score: null });
  });

  it("min-max normalises each leg before weighting (weighted), so legs on different scales compare", () => {
    const fused = fuse(
      { vector: hits(["1", 0.9], ["2", 0.5]), bm25: hits(["2", 30], ["3", 10]) },
      { vector: 0.3, bm25: 1 },
      { method: "weighted" },
      10,
    );
    // 1: 0.3·1; 2: 0.3·0 + 1·1; 3: 1·0
    expect(fused.map((h) => [h.chunkId, Number(h.score.toFixed(3))])).toEqual([
      ["2", 1],
      ["1", 0.3],
      ["3", 0],
    ]);
  });

  it("gives a leg whose hits all score the same full weight, breaks ties by best rank then id, and cuts to k", () => {
    const fused = fuse({ bm25: hits(["9", 5], ["4", 5], ["7", 5]) }, equal, { method: "weighted" }, 2);
    expect(fused.map((h) => [h.chunkId, h.score])).toEqual([
      ["9", 1],
      ["4", 1],
    ]);
  });

  it("returns nothing for no hits", () => {
    expect(fuse({ vector: [], bm25: [] }, equal, { method: "rrf", k: 60 }, 10)).toEqual([]);
  });
});
