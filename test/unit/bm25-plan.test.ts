import { describe, expect, it } from "vitest";
import {
  type BlockHeader,
  blockBound,
  judgeRound,
  planCutRound,
  planRound,
  scoring,
} from "../../src/retrieval/bm25-plan.ts";

const params = { k1: 1.2, b: 0.75 };
const s = scoring(
  [
    { term: "rare", qtf: 1, df: 2, dead: 0 },
    { term: "common", qtf: 1, df: 90, dead: 0 },
  ],
  { n: 100, avgdl: 10 },
  params,
);
const block = (term: string, blockId: string, postings: number, maxTf: number, minDl: number): BlockHeader => ({
  term,
  blockId,
  postings,
  maxTf,
  minDl,
});

describe("BM25 block bounds", () => {
  it("bound every posting of a block: weight(max tf, min length) is at least any posting's weight", () => {
    const bound = blockBound(block("common", "1", 3, 4, 6), s);
    const weight = s.weights.get("common") ?? 0;
    for (const [tf, dl] of [
      [1, 6],
      [4, 6],
      [4, 30],
      [2, 8],
    ] as const) {
      expect(bound).toBeGreaterThanOrEqual((weight * tf) / (tf + s.fixed + s.perLength * dl));
    }
    // A rarer term weighs more (idf), so its blocks come first.
    expect(blockBound(block("rare", "2", 1, 1, 10), s)).toBeGreaterThan(blockBound(block("common", "3", 1, 1, 10), s));
  });

  it("plan rounds heaviest blocks first, and bound what they leave unread per term", () => {
    const blocks = [block("common", "c1", 50, 5, 4), block("common", "c2", 40, 1, 20), block("rare", "r1", 2, 2, 5)];
    const first = planRound(blocks, s, 1);
    expect(first.blocks.map((b) => b.blockId)).toEqual(["r1"]);
    expect(first.unread.get("common")).toBeCloseTo(blockBound(blocks[0] as BlockHeader, s), 12);
    expect(first.unread.has("rare")).toBe(false);
    expect(first.unseenBound).toBeCloseTo(first.unread.get("common") ?? 0, 12);
    expect(first.exhaustive).toBe(false);
    const all = planRound(blocks, s, Number.POSITIVE_INFINITY);
    expect(all).toMatchObject({ unseenBound: 0, exhaustive: true });
    expect(all.blocks).toHaveLength(3);
  });

  it("certify a round only when neither an unseen chunk nor an uncompleted candidate can reach the k-th score", () => {
    const round = planRound([block("rare", "r1", 2, 2, 5), block("common", "c1", 50, 5, 4)], s, 2);
    const unseen = round.unseenBound;
    const candidates = [
      { chunkId: "1", upper: unseen + 3, score: unseen + 2 },
      { chunkId: "2", upper: unseen + 2.5, score: null }, // deleted or filtered out
      { chunkId: "3", upper: unseen + 1.5, score: unseen + 1 },
      { chunkId: "4", upper: unseen + 0.5, score: unseen + 0.2 },
    ];
    expect(judgeRound(candidates, 3, 2, round)).toEqual({
      hits: [
        { chunkId: "1", score: unseen + 2 },
        { chunkId: "3", score: unseen + 1 },
      ],
      certified: true,
      threshold: unseen + 1,
    });
    // The k-th score below what an unseen chunk could score: read deeper.
    expect(judgeRound(candidates, 3, 3, round).certified).toBe(false);
    // An uncompleted candidate could still beat the k-th: complete more.
    expect(judgeRound(candidates, 1, 1, { ...round, unseenBound: 0 }).certified).toBe(false);
  });

  it("a cut round leaves unread the common terms that together cannot reach its target, and keeps what was read", () => {
    const blocks = [block("rare", "r1", 2, 2, 5), block("common", "c1", 50, 5, 4), block("common", "c2", 40, 1, 20)];
    const first = planRound(blocks, s, 2); // read r1 only
    const commonBound = blockBound(blocks[1] as BlockHeader, s);
    // A target above what "common" can add: none of its blocks is read (MaxScore's non-essential term).
    const high = planCutRound(blocks, s, first, commonBound * 1.01);
    expect(high.blocks.map((b) => b.blockId)).toEqual(["r1"]);
    expect(high.unread.get("common")).toBeCloseTo(commonBound, 12);
    expect(high).toMatchObject({ unseenBound: high.unread.get("common"), exhaustive: false });
    // A target below the lightest block: every block read.
    const low = planCutRound(blocks, s, first, blockBound(blocks[2] as BlockHeader, s) * 0.99);
    expect(low).toMatchObject({ unseenBound: 0, exhaustive: true });
    expect(low.blocks.map((b) => b.blockId).sort()).toEqual(["c1", "c2", "r1"]);
    // What the first round read stays read, whatever the target: its partial sums are exact.
    const afterCommon = planRound(blocks, s, 52); // r1 and c1
    const rest = planCutRound(blocks, s, afterCommon, Number.POSITIVE_INFINITY);
    expect(rest.blocks.map((b) => b.blockId).sort()).toEqual(["c1", "r1"]);
    expect(rest.unread.get("common")).toBeCloseTo(blockBound(blocks[2] as BlockHeader, s), 12);
  });

  it("the cut round reads each term only as deep as the unseen bound needs, a mid-frequency term part-way", () => {
    const three = scoring(
      [
        { term: "rare", qtf: 1, df: 2, dead: 0 },
        { term: "mid", qtf: 1, df: 30, dead: 0 },
        { term: "common", qtf: 1, df: 90, dead: 0 },
      ],
      { n: 100, avgdl: 10 },
      params,
    );
    const blocks = [
      block("rare", "r1", 2, 2, 5),
      block("mid", "m1", 5, 4, 4),
      block("mid", "m2", 25, 1, 30),
      block("common", "c1", 90, 1, 20),
    ];
    const bound = (id: string) => blockBound(blocks.find((b) => b.blockId === id) as BlockHeader, three);
    const first = planRound(blocks, three, 2); // r1
    expect(first.blocks.map((b) => b.blockId)).toEqual(["r1"]);
    // θ between common + mid's light block and common + mid's heavy one: MaxScore would read "mid"
    // whole (it is essential); the cut reads its heavy block only, and leaves an unseen bound under θ.
    const theta = bound("c1") + (bound("m1") + bound("m2")) / 2;
    const cut = planCutRound(blocks, three, first, theta);
    expect(cut.blocks.map((b) => b.blockId).sort()).toEqual(["m1", "r1"]);
    expect(cut.unread.get("mid")).toBeCloseTo(bound("m2"), 12);
    expect(cut.unread.get("common")).toBeCloseTo(bound("c1"), 12);
    expect(cut.unseenBound).toBeLessThan(theta);
    expect(cut.exhaustive).toBe(false);
    // θ out of reach of every unread block together: nothing more to read.
    expect(planCutRound(blocks, three, first, bound("c1") + bound("m1") + 1e-9).blocks.map((b) => b.blockId)).toEqual([
      "r1",
    ]);
    // θ below the lightest block: every block read, each chunk's partial sum is its score.
    const all = planCutRound(blocks, three, first, Math.min(bound("m2"), bound("c1")) / 2);
    expect(all).toMatchObject({ unseenBound: 0, exhaustive: true });
    expect(all.blocks.map((b) => b.blockId).sort()).toEqual(["c1", "m1", "m2", "r1"]);
  });
});
