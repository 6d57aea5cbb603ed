import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { App } from "../../../src/app.ts";
import { lexicalRelevance } from "../../../src/dev/dev-reranker.ts";
import { startDevInferenceServer } from "../../../src/dev/dev-server.ts";
import { api, type ApiResponse } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { seedScifact } from "../../helpers/ingest.ts";

interface Hit {
  chunk_id: string;
  content: string;
  score: number;
  rerank_score?: number | null;
  explain?: { vector: { rank: number | null }; bm25: { rank: number | null }; rerank: { rank: number } | null };
}
interface Found {
  results: Hit[];
  rerank: { status: string; reason?: string; message?: string; candidates?: number };
  timings_ms: Record<string, number>;
}

const RERANKER = { PGRAG_RERANK_MODEL: "dev-reranker", PGRAG_RERANK_TIMEOUT_MS: "500" };
const QUERY = "vitamin D deficiency and bone fractures in older adults";

function search(app: App, key: string, body: Record<string, unknown>): Promise<ApiResponse<Found>> {
  return api<Found>(app, "POST", "/v1/search", { key, json: { collection: "sci", query: QUERY, ...body } });
}

describe("the rerank stage", () => {
  let app: App;
  let key: string;
  beforeAll(async () => {
    app = await startTestApp(RERANKER, { workers: true });
    ({ key } = await seedScifact(app, 120));
  });

  it("reorders the top N fused candidates by the reranker's scores, and explains both orders", async () => {
    const dev = app.devInference();
    const asked = dev?.stats.rerankedDocuments ?? 0;
    const fused = await search(app, key, { k: 50, rerank: false, candidates: 50 });
    expect([fused.headers.get("x-rerank"), fused.body.rerank]).toEqual([null, { status: "off" }]);
    const reranked = await search(app, key, { k: 10, explain: true });
    expect(reranked.status).toBe(200);
    expect(reranked.headers.get("x-rerank")).toBe("applied");
    expect(reranked.body.rerank).toEqual({ status: "applied", candidates: 50 });
    expect(dev?.stats.rerankedDocuments).toBe(asked + 50);
    // The reranker's order of the 50 fused candidates, ties in fused order: the top 10 served.
    const expected = fused.body.results
      .map((hit, index) => ({ hit, index, score: lexicalRelevance(QUERY, hit.content) }))
      .sort((a, b) => b.score - a.score || a.index - b.index)
      .slice(0, 10);
    expect(reranked.body.results.map((r) => r.chunk_id)).toEqual(expected.map((e) => e.hit.chunk_id));
    expect(reranked.body.results.map((r) => r.rerank_score)).toEqual(expected.map((e) => e.score));
    expect(reranked.body.results.map((r) => r.explain?.rerank?.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Not the fused order: the stage did something here.
    expect(reranked.body.results.map((r) => r.chunk_id)).not.toEqual(
      fused.body.results.slice(0, 10).map((r) => r.chunk_id),
    );
    expect(reranked.body.timings_ms.rerank).toBeGreaterThan(0);

    // N per request.
    const few = await search(app, key, { k: 3, rerank_candidates: 5 });
    expect(few.body.rerank).toEqual({ status: "applied", candidates: 5 });
    expect(dev?.stats.rerankedDocuments).toBe(asked + 55);
    expect(few.body.results.map((r) => r.chunk_id)).toEqual(
      fused.body.results
        .slice(0, 5)
        .map((hit, index) => ({ hit, index, score: lexicalRelevance(QUERY, hit.content) }))
        .sort((a, b) => b.score - a.score || a.index - b.index)
        .slice(0, 3)
        .map((e) => e.hit.chunk_id),
    );
  });

  it("serves the fused order with the reason when the reranker is slow, failing or talking nonsense", async () => {
    // The legs fetch as many candidates as the reranker would order (50): the same fused order.
    const fused = (await search(app, key, { k: 10, rerank: false, candidates: 50 })).body.results.map(
      (r) => r.chunk_id,
    );
    const cases: [Parameters<typeof injectDevFaults>[1], string][] = [
      [{ rerankDelayMs: 5_000 }, "timeout"],
      [{ rerankFailStatus: 503 }, "upstream_error"],
      [{ malformedRerank: true }, "bad_response"],
    ];
    for (const [faults, reason] of cases) {
      const fault = injectDevFaults(app.devInference(), faults);
      const found = await search(app, key, { k: 10 });
      fault.clear();
      expect([found.status, found.headers.get("x-rerank"), found.body.rerank.reason], reason).toEqual([
        200,
        `fallback; reason=${reason}`,
        reason,
      ]);
      expect(found.body.results.map((r) => r.chunk_id)).toEqual(fused);
      expect(found.body.results.every((r) => r.rerank_score === undefined)).toBe(true);
    }
  });

  it("says so on chat answers too", async () => {
    const chat = await api<{ retrieval: { rerank: { status: string } } }>(app, "POST", "/v1/chat", {
      key,
      json: { collection: "sci", question: QUERY, stream: false },
    });
    expect([chat.headers.get("x-rerank"), chat.body.retrieval.rerank.status]).toEqual(["applied", "applied"]);
  });
});

describe("the rerank stage's breaker and adapters", () => {
  it("stops asking a reranker that keeps failing, until its cool-down has passed", async () => {
    const app = await startTestApp(
      {
        ...RERANKER,
        PGRAG_RERANK_BREAKER_FAILURES: "2",
        PGRAG_RERANK_BREAKER_COOLDOWN_MS: "3600000",
      },
      { workers: true },
    );
    const { key } = await seedScifact(app, 10);
    const dev = app.devInference();
    injectDevFaults(dev, { malformedRerank: true });
    const asked = dev?.stats.rerankRequests ?? 0;
    for (const reason of ["bad_response", "bad_response", "breaker_open", "breaker_open"]) {
      expect((await search(app, key, { k: 3 })).headers.get("x-rerank")).toBe(`fallback; reason=${reason}`);
    }
    expect(dev?.stats.rerankRequests).toBe(asked + 2);
  });

  it("speaks Hugging Face TEI's /rerank", async () => {
    const tei = await startDevInferenceServer({
      dimension: 384,
      embeddingModel: "unused",
      chatModel: "unused",
      apiKey: "tei-key",
    });
    onTestFinished(() => tei.close());
    const app = await startTestApp(
      {
        PGRAG_RERANK_MODEL: "BAAI/bge-reranker-base",
        PGRAG_RERANK_API: "tei",
        PGRAG_RERANK_URL: new URL(tei.url).origin,
        PGRAG_RERANK_API_KEY: "tei-key",
      },
      { workers: true },
    );
    const { key } = await seedScifact(app, 10);
    const found = await search(app, key, { k: 3 });
    expect([found.headers.get("x-rerank"), tei.stats.rerankRequests]).toEqual(["applied", 1]);
    expect(tei.stats.rerankedDocuments).toBe(found.body.rerank.candidates);
    expect(app.devInference()?.stats.rerankRequests).toBe(0);
  });

  it("refuses a request for reranking when no reranker is configured", async () => {
    const app = await startTestApp({}, { workers: true });
    const { key } = await seedScifact(app, 3);
    const found = await api<{ error: { message: string } }>(app, "POST", "/v1/search", {
      key,
      json: { collection: "sci", query: QUERY, rerank: true },
    });
    expect([found.status, found.body.error.message]).toEqual([
      400,
      "no reranker is configured (PGRAG_RERANK_MODEL): leave rerank out",
    ]);
  });
});
