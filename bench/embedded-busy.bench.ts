/**
 * `npm run bench:embedded [-- --megabytes N]`: the embedded default (`npm start`: PGlite, the dev
 * inference backend and the API in one process) while it ingests one large document. A Markdown
 * document of N MB (default 5) of SciFact abstracts is sent with curl (a process of its own); a search
 * is issued every 100 ms until the document is ready. Printed: how many searches were answered and
 * with which status, their p50 / p99 / max, and how long the document took.
 * Target: every search answered (no 503 from a node marked down while busy).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { readScifactCorpus } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { percentile } from "./stats.ts";

const { values: options } = parseArgs({ options: { megabytes: { type: "string", default: "5" } } });
const bytes = Number(options.megabytes) * 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "pgrag-embedded-busy-"));
// Only the embedded database's settings: whatever the shell has for a real topology is left out.
const config = loadConfig({
  PGRAG_EMBEDDED_DATA_DIR: join(dir, "data"),
  PGRAG_EMBEDDED_PORT: "55995",
  PGRAG_PORT: "0",
  PGRAG_LOG_LEVEL: "warn",
});
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const base = `http://127.0.0.1:${app.port()}`;
const key = app.devApiKey() ?? "";
const call = (method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const abstracts = await readScifactCorpus(100_000);
await call("POST", "/v1/collections", { name: "docs" });
await call("PUT", "/v1/collections/docs/documents/small", { content: abstracts[0]?.text });
let markdown = "";
for (let i = 0; markdown.length < bytes; i++) {
  const a = abstracts[i % abstracts.length];
  markdown += `## ${a?.title}\n\n${a?.text}\n\n`;
}
const file = join(dir, "large.md");
writeFileSync(file, markdown);
console.log(`bench:embedded — searches every 100 ms while a ${(bytes / 1024 / 1024).toFixed(0)} MB document ingests`);

const started = performance.now();
const upload = promisify(execFile)(
  "curl",
  [
    "-s",
    "-X",
    "PUT",
    "-H",
    `Authorization: Bearer ${key}`,
    "-H",
    "Content-Type: text/markdown",
    "--data-binary",
    `@${file}`,
    `${base}/v1/collections/docs/documents/large`,
  ],
  { maxBuffer: 1 << 20 },
);
let uploaded = false;
void upload.then(() => (uploaded = true));
const latencies: number[] = [];
const statuses = new Map<number, number>();
let status = "queued";
for (let i = 0; status !== "ready" && status !== "failed"; i++) {
  const next = performance.now() + 100;
  const sent = performance.now();
  const response = await call("POST", "/v1/search", { collection: "docs", query: abstracts[i % 50]?.title, k: 5 });
  await response.arrayBuffer();
  latencies.push(performance.now() - sent);
  statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
  if (uploaded && i % 10 === 0) {
    const document = (await (await call("GET", "/v1/collections/docs/documents/large")).json()) as {
      document?: { status: string };
    };
    status = document.document?.status ?? status;
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
}
const answered = statuses.get(200) ?? 0;
console.log(`document ${status} after ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(
  `searches: ${answered} of ${latencies.length} answered (${[...statuses].map(([code, n]) => `${n}× ${code}`).join(", ")}); ` +
    `p50 ${percentile(latencies, 50).toFixed(0)} / p99 ${percentile(latencies, 99).toFixed(0)} / max ${Math.max(...latencies).toFixed(0)} ms` +
    `   target (all answered) ${answered === latencies.length ? "met" : "MISSED"}`,
);
await app.stop();
