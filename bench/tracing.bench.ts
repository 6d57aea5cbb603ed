/**
 * `npm run bench:tracing [BENCH_QUERIES=300]`: what tracing costs a request. Two platforms in one
 * process on the same database: tracing off (the default) and on (every span recorded and handed
 * to an exporter that drops it, so the export itself is not measured). The same SciFact claims are
 * sent through the HTTP app to each in turn, alternating query by query so that drift hits both,
 * as hybrid searches; p50/p95 and the ratios on/off.
 */
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { type App, createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { loadBeirCollection, readBeirQueries } from "../src/evaluation/beir.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { formatMs, percentile, timed } from "./stats.ts";

const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);

const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_WORKER_CONCURRENCY: "0",
  PGRAG_RATE_LIMIT_PER_SECOND: "1000000",
  PGRAG_RATE_LIMIT_BURST: "1000000",
  PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "1000000",
});
let exported = 0;
const dropping: SpanExporter = {
  export(spans, done) {
    exported += spans.length;
    done({ code: 0 });
  },
  shutdown: async () => {},
};
const start = async (spanExporter?: SpanExporter) => {
  const app = createApp(config, {
    logger: createLogger({ logLevel: "warn" }),
    ...(spanExporter ? { spanExporter } : {}),
  });
  await app.start({ listen: false });
  return app;
};
const off = await start();
const on = await start(dropping);
const { apiKey, collection } = await loadBeirCollection(off, SCIFACT_DIR, (line) => console.log(line));
const claims = (await readBeirQueries(SCIFACT_DIR, "train")).queries.slice(0, QUERIES).map((q) => q.text);

async function search(app: App, query: string): Promise<void> {
  const response = await app.http.request("/v1/search", {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ query, collections: [collection], mode: "hybrid", k: 10 }),
  });
  if (response.status !== 200) throw new Error(`search answered ${response.status}: ${await response.text()}`);
}
// Both warmed up (query embeddings cached, connections open) before anything is timed.
for (const claim of claims) await Promise.all([search(off, claim), search(on, claim)]);
const times = { off: [] as number[], on: [] as number[] };
for (const [i, claim] of claims.entries()) {
  const order = i % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const);
  for (const which of order) times[which].push(await timed(() => search(which === "off" ? off : on, claim)));
}
const line = (which: "off" | "on") =>
  `tracing ${which.padEnd(3)}  p50 ${formatMs(percentile(times[which], 50))}  p95 ${formatMs(percentile(times[which], 95))}`;
console.log(line("off"));
console.log(line("on"));
console.log(
  `on/off: p50 ${(percentile(times.on, 50) / percentile(times.off, 50)).toFixed(2)}×, p95 ${(percentile(times.on, 95) / percentile(times.off, 95)).toFixed(2)}×; spans exported ${exported} (${(exported / (2 * claims.length)).toFixed(1)} a search)`,
);
await Promise.all([off.stop(), on.stop()]);
