import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { termWeight } from "../../src/postings/bm25-weight.ts";
import { encodeBlock, type Posting } from "../../src/postings/postings-codec.ts";
import type { Round, Scoring } from "../../src/retrieval/bm25-plan.ts";
import { chunkBounds, type FetchedBlock } from "../../src/retrieval/block-scoring.ts";

const s: Scoring = {
  weights: new Map([
    ["a", 2.5],
    ["b", 1.25],
    ["c", 0.5],
  ]),
  fixed: 0.54,
  perLength: 0.009,
};

/** Blocks of terms a, b, c over chunk ids spaced by `spread` (1: consecutive; large: sparse). */
const blocksOf = (spread: number) =>
  fc
    .array(
      fc.record({
        term: fc.constantFrom("a", "b", "c"),
        postings: fc.uniqueArray(
          fc.record({
            chunkId: fc.integer({ min: 0, max: 400 }),
            tf: fc.integer({ min: 1, max: 9 }),
            dl: fc.integer({ min: 1, max: 300 }),
          }),
          { minLength: 1, maxLength: 40, selector: (p) => p.chunkId },
        ),
      }),
      { minLength: 1, maxLength: 8 },
    )
    .map((blocks) => {
      // A chunk's posting of a term is in one block of that term only, with one length per chunk.
      const seen = new Set<string>();
      return blocks
        .map((b) => ({
          term: b.term,
          postings: b.postings
            .filter((p) => !seen.has(`${b.term}:${p.chunkId}`) && seen.add(`${b.term}:${p.chunkId}`))
            .map((p) => ({ chunkId: 1 + p.chunkId * spread, tf: p.tf, dl: 1 + ((p.chunkId * 37) % 300) })),
        }))
        .filter((b) => b.postings.length > 0);
    });

function fetched(blocks: { term: string; postings: Posting[] }[]): FetchedBlock[] {
  return blocks.map((b) => ({ term: b.term, ...encodeBlock(b.postings) }));
}

/** The same bounds computed the plain way. */
function expected(blocks: { term: string; postings: Posting[] }[], round: Round) {
  const sums = new Map<number, { dl: number; upper: number }>();
  for (const b of blocks) {
    for (const p of b.postings) {
      const entry = sums.get(p.chunkId) ?? { dl: p.dl, upper: round.unseenBound };
      entry.upper += (s.weights.get(b.term) ?? 0) * termWeight(p.tf, p.dl, s) - (round.unread.get(b.term) ?? 0);
      sums.set(p.chunkId, entry);
    }
  }
  return [...sums].map(([chunkId, e]) => ({ chunkId, ...e }));
}

describe("summing a round's packed postings per chunk", () => {
  for (const [name, spread] of [
    ["consecutive ids (arrays)", 1],
    ["ids far apart (a map)", 1_000_003],
  ] as const) {
    it(`gives every chunk seen its exact bound, best first, cut at the limit and the floor — ${name}`, async () => {
      await fc.assert(
        fc.asyncProperty(
          blocksOf(spread),
          fc.integer({ min: 1, max: 50 }),
          fc.double({ min: 0, max: 3, noNaN: true }),
          async (blocks, limit, floor) => {
            const postings = blocks.reduce((sum, b) => sum + b.postings.length, 0);
            const round: Round = {
              blocks: [],
              unread: new Map([
                ["b", 0.3],
                ["c", 0.1],
              ]),
              unseenBound: 0.4,
              exhaustive: false,
            };
            const all = expected(blocks, round);
            const got = await chunkBounds(fetched(blocks), postings, s, round, null, Number.NEGATIVE_INFINITY);
            expect(got).toHaveLength(all.length);
            const byId = new Map(all.map((e) => [e.chunkId, e]));
            for (const g of got) {
              expect(g.dl).toBe(byId.get(g.chunkId)?.dl);
              expect(g.upper).toBeCloseTo(byId.get(g.chunkId)?.upper ?? Number.NaN, 9);
            }
            for (let i = 1; i < got.length; i++) {
              const [a, b] = [got[i - 1], got[i]];
              expect(a && b && (a.upper > b.upper || (a.upper === b.upper && a.chunkId < b.chunkId))).toBe(true);
            }
            const cut = await chunkBounds(fetched(blocks), postings, s, round, limit, floor);
            expect(cut).toEqual(got.filter((g) => g.upper >= floor).slice(0, limit));
          },
        ),
      );
    });
  }

  it("sums a range of ids wider than one bucket the same way (several buckets, sorted stably)", async () => {
    // 40k postings over ids up to 300k: dense slots (span ≤ 8 a posting), past the one-bucket range (2^18).
    let seed = 7;
    const random = () => (seed = (seed * 48_271) % 2_147_483_647) / 2_147_483_647;
    const blocks = ["a", "b", "c", "a", "b"].map((term, i) => ({
      term,
      postings: Array.from({ length: 8_000 }, (_, j) => ({
        chunkId: 1 + ((j * 50 + i * 7 + Math.floor(random() * 5)) % 300_000),
        tf: 1 + Math.floor(random() * 4),
        dl: 0,
      })),
    }));
    // One posting per chunk and term, one length per chunk.
    const seen = new Set<string>();
    for (const b of blocks) {
      b.postings = b.postings
        .filter((p) => !seen.has(`${b.term}:${p.chunkId}`) && seen.add(`${b.term}:${p.chunkId}`))
        .map((p) => ({ ...p, dl: 1 + (p.chunkId % 97) }));
    }
    const postings = blocks.reduce((sum, b) => sum + b.postings.length, 0);
    const round: Round = { blocks: [], unread: new Map([["c", 0.2]]), unseenBound: 0.2, exhaustive: false };
    const all = expected(blocks, round);
    const got = await chunkBounds(fetched(blocks), postings, s, round, null, Number.NEGATIVE_INFINITY);
    expect(got).toHaveLength(all.length);
    const byId = new Map(all.map((e) => [e.chunkId, e]));
    for (const g of got) expect(g.upper).toBeCloseTo(byId.get(g.chunkId)?.upper ?? Number.NaN, 9);
    expect(await chunkBounds(fetched(blocks), postings, s, round, 10, 0)).toEqual(got.slice(0, 10));
  });
});
