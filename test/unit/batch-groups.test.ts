import { describe, expect, it } from "vitest";
import { byInputs } from "../../src/batch/batch-runner.ts";
import type { ClaimedLine } from "../../src/batch/batches.repository.ts";

const line = (n: number, input: unknown): ClaimedLine => ({
  batchId: "b",
  line: n,
  tenantId: "t",
  customId: `c${n}`,
  body: { input },
  endpoint: "/v1/embeddings",
  attempt: 1,
});
const texts = (count: number) => Array.from({ length: count }, (_, i) => `text ${i}`);

describe("embedding line groups", () => {
  it("hold at most 256 inputs, a larger line alone, so a group's vectors stay bounded", () => {
    const lines = [line(1, texts(100)), line(2, texts(100)), line(3, texts(100)), line(4, texts(2048)), line(5, "x")];
    expect(byInputs(lines).map((group) => group.map((l) => l.line))).toEqual([[1, 2], [3], [4], [5]]);
  });

  it("put many small lines together, and a line refused for its input anywhere", () => {
    const lines = Array.from({ length: 300 }, (_, i) => line(i, i === 5 ? 42 : `text ${i}`));
    expect(byInputs(lines).map((group) => group.length)).toEqual([257, 43]);
  });
});
