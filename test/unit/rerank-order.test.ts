import { describe, expect, it } from "vitest";
import { orderOf, RerankFailure } from "../../src/inference/rerank-client.ts";
import { lexicalRelevance } from "../../src/dev/dev-reranker.ts";

describe("a reranker's answer", () => {
  it("orders every passage sent, best first; those it left unscored follow in their fused order", () => {
    expect(
      orderOf(
        [
          { index: 3, score: 0.2 },
          { index: 1, score: 0.9 },
        ],
        5,
      ),
    ).toEqual([
      { index: 1, score: 0.9 },
      { index: 3, score: 0.2 },
      { index: 0, score: null },
      { index: 2, score: null },
      { index: 4, score: null },
    ]);
  });

  it("is refused when it names a passage not sent, or one twice", () => {
    for (const scored of [
      [{ index: 5, score: 1 }],
      [{ index: -1, score: 1 }],
      [
        { index: 0, score: 1 },
        { index: 0, score: 0.5 },
      ],
    ]) {
      expect(() => orderOf(scored, 5)).toThrow(RerankFailure);
      expect(() => orderOf(scored, 5)).toThrow(expect.objectContaining({ reason: "bad_response" }));
    }
  });
});

describe("the dev reranker's relevance", () => {
  it("grows with the question's words a passage holds", () => {
    const query = "vitamin D and bone fractures";
    const none = lexicalRelevance(query, "Statins lower cholesterol.");
    const some = lexicalRelevance(query, "Vitamin D was measured.");
    const all = lexicalRelevance(query, "Vitamin D supplements and bone fractures in the elderly.");
    expect([none, some < all, some > none]).toEqual([0, true, true]);
  });
});
