import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";

/**
 * The dev backend's reranker: POST /v1/rerank in the shape Cohere, Jina, vLLM and Infinity share,
 * and POST /rerank as Hugging Face TEI answers it. No cross-encoder weights can be downloaded here,
 * so a passage's relevance is a deterministic lexical stand-in (how many of the question's words it
 * holds, and how densely): enough to test the stage end to end, not to judge rerankers.
 */
export interface DevRerankFaults {
  /** Delay before answering a rerank request (a busy GPU). */
  rerankDelayMs: number;
  /** Answer indexes outside the documents sent, as a broken reranker might. */
  malformedRerank: boolean;
  /** Answer rerank requests with this HTTP status (0: answer them). */
  rerankFailStatus: number;
}

export interface DevRerankStats {
  rerankRequests: number;
  rerankedDocuments: number;
  /** Milliseconds spent scoring, summed (the injected delay not included): the backend's own service time. */
  rerankServiceMs: number;
}

const cohereShape = z.object({
  model: z.string(),
  query: z.string(),
  documents: z.array(z.union([z.string(), z.object({ text: z.string() })])),
  top_n: z.number().int().positive().optional(),
});

const teiShape = z.object({
  query: z.string(),
  texts: z.array(z.string()),
  raw_scores: z.boolean().optional(),
  truncate: z.boolean().optional(),
});

function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** In [0, 1]: mostly the share of the question's words the passage holds, a little how densely. */
export function lexicalRelevance(query: string, passage: string): number {
  const asked = new Set(words(query).filter((w) => w.length > 2));
  if (asked.size === 0) return 0;
  const passageWords = words(passage);
  const present = new Set(passageWords.filter((w) => asked.has(w)));
  const hits = passageWords.filter((w) => asked.has(w)).length;
  const coverage = present.size / asked.size;
  const density = Math.min(1, hits / Math.sqrt(Math.max(1, passageWords.length)));
  return Math.round((0.8 * coverage + 0.2 * density) * 1e6) / 1e6;
}

export function createDevRerankApp(
  faults: DevRerankFaults,
  stats: DevRerankStats,
  sleep: (ms: number) => Promise<void>,
) {
  const ranked = async (query: string, texts: readonly string[], topN: number) => {
    stats.rerankRequests++;
    stats.rerankedDocuments += texts.length;
    await sleep(faults.rerankDelayMs);
    const started = performance.now();
    const scores = texts
      .map((text, index) => ({
        index: faults.malformedRerank ? texts.length + index : index,
        score: lexicalRelevance(query, text),
      }))
      .sort((a, b) => b.score - a.score || a.index - b.index)
      .slice(0, topN);
    stats.rerankServiceMs += performance.now() - started;
    return scores;
  };
  const invalid = (message: string) => ({ error: { message, type: "invalid_request_error", param: null, code: null } });
  // Only on its own paths: mounted at the dev backend's root, a middleware would see every request.
  const injectFailure: MiddlewareHandler = async (c, next) => {
    if (faults.rerankFailStatus === 0) return next();
    return c.json({ error: { message: "injected failure", type: "server_error" } }, faults.rerankFailStatus as 500);
  };
  return new Hono()
    .use("/v1/rerank", injectFailure)
    .use("/rerank", injectFailure)
    .post("/v1/rerank", async (c) => {
      const parsed = cohereShape.safeParse(await c.req.json().catch(() => null));
      if (!parsed.success) return c.json(invalid(parsed.error.message), 400);
      const { model, query, documents, top_n } = parsed.data;
      const texts = documents.map((d) => (typeof d === "string" ? d : d.text));
      const results = await ranked(query, texts, top_n ?? texts.length);
      return c.json({
        id: `rerank-dev-${stats.rerankRequests}`,
        model,
        results: results.map((r) => ({ index: r.index, relevance_score: r.score })),
        usage: { total_tokens: words(query).length + texts.reduce((n, t) => n + words(t).length, 0) },
      });
    })
    .post("/rerank", async (c) => {
      const parsed = teiShape.safeParse(await c.req.json().catch(() => null));
      if (!parsed.success) return c.json({ error: parsed.error.message, error_type: "Validation" }, 422);
      const { query, texts } = parsed.data;
      return c.json(await ranked(query, texts, texts.length));
    });
}
