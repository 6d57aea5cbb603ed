import { describe, expect, it } from "vitest";
import { countCap, readPlan } from "../../src/retrieval/read-plan.ts";

const options = { exactScanThreshold: 5_000, bm25FilteredThreshold: 15_000 };

describe("readPlan", () => {
  it("counts no further than the larger threshold", () => {
    expect(countCap(options)).toBe(15_000);
    expect(countCap({ exactScanThreshold: 20_000, bm25FilteredThreshold: 0 })).toBe(20_000);
  });

  it("walks the graph and reads postings for a large unfiltered collection", () => {
    expect(readPlan(100_000, false, options)).toEqual({ vector: "index", bm25: "postings" });
  });

  it("scans a small collection exactly, and keeps its postings when nothing filters", () => {
    expect(readPlan(4_000, false, options)).toEqual({ vector: "exact", bm25: "postings" });
  });

  it("chooses each leg's path at its own threshold for a filtered read, the thresholds included", () => {
    expect(readPlan(5_000, true, options)).toEqual({ vector: "exact", bm25: "filtered" });
    expect(readPlan(5_001, true, options)).toEqual({ vector: "index", bm25: "filtered" });
    expect(readPlan(15_000, true, options)).toEqual({ vector: "index", bm25: "filtered" });
    // A count stopped at the cap says "more": both legs take the paths for many chunks.
    expect(readPlan(15_001, true, options)).toEqual({ vector: "index", bm25: "postings" });
  });

  it("never scores filtered chunks directly when that path is switched off", () => {
    expect(readPlan(10, true, { ...options, bm25FilteredThreshold: 0 })).toEqual({ vector: "exact", bm25: "postings" });
  });
});
