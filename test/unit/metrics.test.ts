import { describe, expect, it } from "vitest";
import { ndcgAt, recallAt } from "../../src/evaluation/metrics.ts";

describe("retrieval metrics", () => {
  const qrels = new Map([
    ["d1", 1],
    ["d2", 1],
  ]);
  it("nDCG@10 is 1 for an ideal ranking and discounts by log2 of the position", () => {
    expect(ndcgAt(["d1", "d2", "x"], qrels, 10)).toBeCloseTo(1);
    // d1 at rank 2 only: (1/log2 3) / (1 + 1/log2 3)
    expect(ndcgAt(["x", "d1"], qrels, 10)).toBeCloseTo(1 / Math.log2(3) / (1 + 1 / Math.log2(3)));
    expect(ndcgAt(["x", "y"], qrels, 10)).toBe(0);
  });
  it("Recall@k counts relevant documents in the top k", () => {
    expect(recallAt(["d1", "x", "d2"], qrels, 2)).toBe(0.5);
    expect(recallAt(["d1", "x", "d2"], qrels, 3)).toBe(1);
  });
});
