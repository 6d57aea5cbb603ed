import { describe, expect, it } from "vitest";
import { type Probe, searchSustainedRate } from "../../loadtest/rate-search.ts";

const OPTIONS = { start: 10, factor: 1.5, precision: 0.1, maxProbes: 20, minRate: 2 };

/** A system that holds every rate up to `capacity`; `flakes` lists probe numbers that miss anyway. */
function system(capacity: number, flakes: number[] = []) {
  let n = 0;
  return async (rate: number): Promise<Probe> => {
    n++;
    return { rate, held: rate <= capacity && !flakes.includes(n) };
  };
}

describe("the sustained-rate search", () => {
  it("steps up, then bisects to within the precision below the capacity", async () => {
    const result = await searchSustainedRate(system(73), OPTIONS);
    expect(result.sustained).toBeLessThanOrEqual(73);
    expect(result.missed).toBeGreaterThan(73);
    expect((result.missed - result.sustained) / result.missed).toBeLessThanOrEqual(0.1);
    expect(result.probes.map((p) => p.rate).slice(0, 6)).toEqual([10, 15, 23, 35, 53, 80]);
  });

  it("retries a miss once: one slow probe does not end the search", async () => {
    const steady = await searchSustainedRate(system(73), OPTIONS);
    const flaky = await searchSustainedRate(system(73, [2]), OPTIONS); // the first try of 15/s misses
    expect(flaky.probes.slice(1, 3)).toEqual([
      { rate: 15, held: false },
      { rate: 15, held: true },
    ]);
    expect(flaky.sustained).toBe(steady.sustained);
  });

  it("goes below the start when the start misses, and reports 0 when nothing holds", async () => {
    expect((await searchSustainedRate(system(6), OPTIONS)).sustained).toBeGreaterThanOrEqual(5);
    const none = await searchSustainedRate(system(0), OPTIONS);
    expect(none.sustained).toBe(0);
    expect(none.probes.every((p) => !p.held)).toBe(true);
  });

  it("never probes more than it is allowed", async () => {
    const result = await searchSustainedRate(system(10_000), { ...OPTIONS, maxProbes: 5 });
    expect(result.probes).toHaveLength(5);
    expect(result.missed).toBe(Number.POSITIVE_INFINITY);
  });
});
