/**
 * `npm run bench:rerank`: what the rerank stage adds to a search at N = 50 candidates, against the
 * reranker's own service time. The reranker is the dev backend on a port of its own (a real one is
 * another host): for each SciFact claim, POST /v1/search with and without the stage, then the very
 * 50 passages replayed straight to the reranker. Its scoring is lexical, so the figures are the
 * platform's cost around a reranker, not a cross-encoder's.
 */
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { startDevInferenceServer } from "../src/dev/dev-server.ts";
import { loadBeirCollection, readBeirQueries } from "../src/evaluation/beir.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { formatMs, percentile } from "./stats.ts";

const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const CANDIDATES = 50;
const reranker = await startDevInferenceServer({
  dimension: 8,
  embeddingModel: "unused",
  chatModel: "unused",
  apiKey: "bench-reranker",
});
const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_PORT: "0",
  PGRAG_RERANK_MODEL: "dev-reranker",
  PGRAG_RERANK_URL: reranker.url,
  PGRAG_RERANK_API_KEY: reranker.apiKey,
  PGRAG_RERANK_CANDIDATES: String(CANDIDATES),
});
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const { apiKey, collection } = await loadBeirCollection(app, SCIFACT_DIR, (line) => console.log(line));
const { queries } = await readBeirQueries(SCIFACT_DIR, "train");

interface Found {
  results: { content: string }[];
  rerank: { status: string };
  timings_ms: { total: number; rerank: number };
}
async function search(query: string, extra: Record<string, unknown>): Promise<{ ms: number; body: Found }> {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${app.port()}/v1/search`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ collection, query, k: 10, ...extra }),
  });
  const body = (await response.json()) as Found;
  return { ms: performance.now() - started, body };
}

const fused: number[] = [];
const reranked: number[] = [];
const added: number[] = [];
const stage: number[] = [];
const alone: number[] = [];
let fallbacks = 0;
for (const query of queries.slice(0, QUERIES)) {
  // The legs fetch 50 candidates either way, so the difference is the stage alone.
  const without = await search(query.text, { rerank: false, candidates: CANDIDATES });
  const withStage = await search(query.text, { rerank: true, candidates: CANDIDATES });
  if (withStage.body.rerank.status !== "applied") fallbacks++;
  const passages = (await search(query.text, { rerank: false, candidates: CANDIDATES, k: CANDIDATES })).body.results;
  const started = performance.now();
  const direct = await fetch(`${reranker.url}/rerank`, {
    method: "POST",
    headers: { Authorization: `Bearer ${reranker.apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({
      model: "dev-reranker",
      query: query.text,
      documents: passages.map((p) => p.content),
      top_n: passages.length,
    }),
  });
  await direct.json();
  alone.push(performance.now() - started);
  fused.push(without.ms);
  reranked.push(withStage.ms);
  added.push(withStage.ms - without.ms);
  stage.push(withStage.body.timings_ms.rerank);
}
const row = (name: string, s: number[]) =>
  `${name.padEnd(44)} p50 ${formatMs(percentile(s, 50))}   p95 ${formatMs(percentile(s, 95))}`;
const serviceMs = reranker.stats.rerankServiceMs / reranker.stats.rerankRequests;
console.log(
  `bench:rerank — ${fused.length} SciFact train claims, POST /v1/search hybrid k=10, N = ${CANDIDATES} candidates, reranker on its own port (${fallbacks} fell back)`,
);
console.log(row("search without the stage", fused));
console.log(row("search with the stage", reranked));
console.log(row("added by the stage (difference)", added));
console.log(row("the stage's own timing (timings_ms.rerank)", stage));
console.log(row("the reranker alone, same 50 passages (HTTP)", alone));
console.log(`the reranker's scoring inside its handler: mean ${formatMs(serviceMs)} per request`);
console.log(
  `added ÷ reranker alone: p50 ${(percentile(added, 50) / percentile(alone, 50)).toFixed(2)}×, p95 ${(percentile(added, 95) / percentile(alone, 95)).toFixed(2)}×`,
);
await app.stop();
await reranker.close();
