/**
 * `npm run bench:chat`: our overhead before the first token — retrieval, prompt assembly and proxying —
 * beyond the backend's own time to first token. For each SciFact question: the time from sending
 * POST /v1/chat (streaming) to the first token event, minus the time the backend alone takes to its
 * first token for the very prompt we sent it (replayed straight to the backend right after).
 */
import OpenAI from "openai";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { loadBeirCollection, readBeirQueries } from "../src/evaluation/beir.ts";
import { createLogger } from "../src/logger.ts";
import { readSse } from "../harness/sse.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { formatMs, percentile } from "./stats.ts";

const QUESTIONS = Number(process.env.BENCH_QUESTIONS ?? 100);
const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn", PGRAG_PORT: "0" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const { apiKey, collection } = await loadBeirCollection(app, SCIFACT_DIR, (line) => console.log(line));
const { queries } = await readBeirQueries(SCIFACT_DIR, "train");
const backend = new OpenAI({ ...app.inferenceBackend(), maxRetries: 0 });
const dev = app.devInference();

const ours: number[] = [];
const backendOnly: number[] = [];
const overhead: number[] = [];
for (const query of queries.slice(0, QUESTIONS)) {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${app.port()}/v1/chat`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify({ question: query.text, collection }),
  });
  let firstToken = Number.NaN;
  await readSse(response, (event) => {
    if (event === "token" && Number.isNaN(firstToken)) firstToken = performance.now() - started;
    return true;
  });
  // Replay the prompt we sent straight to the backend (known for the dev backend, which records it).
  const messages = (dev?.stats.lastChatMessages ?? []) as OpenAI.Chat.ChatCompletionMessageParam[];
  const replayStart = performance.now();
  const stream = await backend.chat.completions.create({ model: config.inference.chatModel, messages, stream: true });
  let backendFirst = Number.NaN;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content && Number.isNaN(backendFirst)) backendFirst = performance.now() - replayStart;
  }
  ours.push(firstToken);
  backendOnly.push(backendFirst);
  overhead.push(firstToken - backendFirst);
}
const row = (name: string, s: number[]) =>
  `${name.padEnd(36)} p50 ${formatMs(percentile(s, 50))}   p95 ${formatMs(percentile(s, 95))}`;
console.log(
  `bench:chat — ${ours.length} SciFact questions, streaming /v1/chat, hybrid retrieval k=8, backend: ${config.inference.url ?? "in-process dev server"}`,
);
console.log(row("our time to first token", ours));
console.log(row("backend alone, same prompt", backendOnly));
console.log(row("our overhead (difference)", overhead));
console.log(`target: overhead ≤ 30 ms at p95 → ${percentile(overhead, 95) <= 30 ? "met" : "not met"}`);
await app.stop();
