import { describe, expect, it } from "vitest";
import { slicesWithinBudget } from "../../src/jobs/slices.ts";
import { writePriority } from "../../src/ingest/ingest-document.job.ts";

describe("ingestion batch slices", () => {
  const slices = (sizes: number[], budget: number) => slicesWithinBudget(sizes, (size) => size, budget);

  it("keep the batch's order and cut where the next document would pass the byte budget", () => {
    expect(slices([3, 3, 3, 3, 3], 10)).toEqual([
      [3, 3, 3],
      [3, 3],
    ]);
    expect(slices([5, 5, 5], 10)).toEqual([[5, 5], [5]]);
    expect(slices([1, 2, 3], 100)).toEqual([[1, 2, 3]]);
    expect(slices([], 10)).toEqual([]);
  });

  it("give a document larger than the budget a slice of its own", () => {
    expect(slices([2, 50, 2, 2], 10)).toEqual([[2], [50], [2, 2]]);
  });
});

describe("write priority", () => {
  it("puts a single document ahead of bulk writes, and larger writes after smaller ones", () => {
    expect([1, 2, 3, 64, 1_000].map(writePriority)).toEqual([0, -1, -2, -6, -10]);
  });
});
