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
import { monitorEventLoopDelay } from "node:perf_hooks";
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
// Just under the size asked for: at the default 5 MB, the largest document the configuration takes.
let markdown = "";
for (let i = 0, size = 0; ; i++) {
  const a = abstracts[i % abstracts.length];
  const section = `## ${a?.title}\n\n${a?.text}\n\n`;
  size += Buffer.byteLength(section);
  if (size > bytes) break;
  markdown += section;
}
const file = join(dir, "large.md");
writeFileSync(file, markdown);
console.log(`bench:embedded — searches every 100 ms while a ${(bytes / 1024 / 1024).toFixed(0)} MB document ingests`);

// The one process's event loop (API, workers and this client share it): how long it was held at most.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const started = performance.now();
const upload = promisify(execFile)(
  "curl",
  [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
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
void upload.then(({ stdout }) => {
  // A refused upload would leave the loop below waiting for a document that never comes.
  if (!stdout.startsWith("2")) throw new Error(`the upload was answered ${stdout}`);
  uploaded = true;
});
const latencies: number[] = [];
const dropped = new Set<string>();
const statuses = new Map<number, number>();
let status = "queued";
for (let i = 0; status !== "ready" && status !== "failed"; i++) {
  const next = performance.now() + 100;
  const sent = performance.now();
  // A connection the server dropped counts as a search not answered (status 0), not as the end of the run.
  const answer = await call("POST", "/v1/search", { collection: "docs", query: abstracts[i % 50]?.title, k: 5 })
    .then(async (response) => ({ status: response.status, body: await response.arrayBuffer() }))
    .catch((error: Error & { cause?: { code?: string } }) => {
      dropped.add(`${error.message}: ${error.cause?.code ?? String(error.cause)}`);
      return { status: 0 };
    });
  latencies.push(performance.now() - sent);
  statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
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
if (dropped.size > 0) console.log(`connections dropped: ${[...dropped].join("; ")}`);
console.log(
  `event loop delay: p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} / max ${(loopDelay.max / 1e6).toFixed(0)} ms`,
);
await app.stop();
