/**
 * `npm run bench:batch`: the inference scheduler with a known "GPU": the dev backend serves at most
 * CONCURRENCY chat requests at once, each taking SERVICE_MS, so its capacity is CONCURRENCY /
 * SERVICE_MS requests per second. In one run:
 *
 * 1. interactive chat alone at ~50% of capacity (open-loop arrivals): time to first token;
 * 2. the same interactive load while a 2,000-line batch runs: time to first token (target p95 ≤ 1.2×
 *    alone), the backend's busy fraction while batch lines are pending (target ≥ 90%), and the
 *    batch's throughput against the capacity interactive traffic leaves;
 * 3. two tenants both past their share, asking at 3:1: how many requests each gets served (target ≈ 1:1).
 */
import { parseArgs } from "node:util";
import { waitFor } from "../harness/wait-for.ts";
import { readSse } from "../harness/sse.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { readScifactCorpus } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { createApiKey, ensureTenant } from "../src/tenancy/api-keys.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { seeded } from "./seeded-random.ts";
import { percentile } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    lines: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "8" },
    "service-ms": { type: "string", default: "250" },
    seconds: { type: "string", default: "30" },
    phases: { type: "string", default: "alone,batch,fair" },
  },
});
const LINES = Number(args.lines);
const CONCURRENCY = Number(args.concurrency);
const SERVICE_MS = Number(args["service-ms"]);
const BASELINE_SECONDS = Number(args.seconds);
const CAPACITY = (CONCURRENCY * 1000) / SERVICE_MS;
const phases = new Set(args.phases.split(","));

const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_INFERENCE_MAX_CONCURRENT: String(CONCURRENCY),
  PGRAG_INFERENCE_MAX_QUEUED: "256",
  PGRAG_BATCH_CONCURRENCY: String(CONCURRENCY * 2),
  PGRAG_RATE_LIMIT_PER_SECOND: "100000",
  PGRAG_RATE_LIMIT_BURST: "100000",
  PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "100000",
});
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
const dev = app.devInference();
if (!dev) throw new Error("bench:batch needs the dev inference backend (no PGRAG_INFERENCE_URL)");
dev.faults.chatConcurrency = CONCURRENCY;
dev.faults.firstTokenDelayMs = SERVICE_MS;

const admin = createAdminDbNode(config);
const run = Date.now();
const keyFor = async (name: string) =>
  (
    await admin.db.transaction().execute(async (tx) =>
      createApiKey(tx, {
        tenantId: await ensureTenant(tx, `bench-batch-${run}-${name}`),
        name,
        scopes: ["read", "write"],
      }),
    )
  ).key;
const request = (key: string, path: string, body: unknown) =>
  app.http.request(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

// One small collection per tenant: the questions are SciFact titles.
const abstracts = await readScifactCorpus(50);
const questions = abstracts.map((a) => a.title);
async function tenantWithCollection(name: string) {
  const key = await keyFor(name);
  await request(key, "/v1/collections", { name: "sci" });
  await request(key, "/v1/collections/sci/documents", {
    documents: abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })),
  });
  await waitFor(
    `${name}'s documents ready`,
    async () => {
      const response = await app.http.request("/v1/collections/sci/documents?status=pending&limit=1", {
        headers: { Authorization: `Bearer ${key}` },
      });
      return ((await response.json()) as { documents: unknown[] }).documents.length === 0;
    },
    120_000,
  );
  return key;
}
const [interactiveKey, batchKey, heavyKey, lightKey] = await Promise.all(
  ["interactive", "batch", "heavy", "light"].map(tenantWithCollection),
);
if (!interactiveKey || !batchKey || !heavyKey || !lightKey) throw new Error("tenants");

interface Outcome {
  status: number;
  ttftMs: number;
  /** When its first token came (performance.now()). */
  firstTokenAt: number;
}
/** One streamed chat completion: its status and the time to its first content token. */
async function chat(key: string, question: string): Promise<Outcome> {
  const started = performance.now();
  const response = await request(key, "/v1/chat/completions", {
    model: "rag:sci",
    stream: true,
    messages: [{ role: "user", content: question }],
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    return { status: response.status, ttftMs: Number.NaN, firstTokenAt: Number.NaN };
  }
  let ttftMs = Number.NaN;
  await readSse(response, (_event, data) => {
    if (Number.isNaN(ttftMs) && /"content":"[^"]/.test(data)) ttftMs = performance.now() - started;
    return true;
  });
  return { status: 200, ttftMs, firstTokenAt: started + ttftMs };
}

/** Open-loop arrivals at `perSecond` (exponential gaps, seeded) for `seconds`; resolves when all are answered. */
async function load(key: string, perSecond: number, seconds: number, until?: () => boolean): Promise<Outcome[]> {
  const random = seeded(Math.round(perSecond * 1000));
  const pending: Promise<Outcome>[] = [];
  const end = performance.now() + seconds * 1000;
  for (let i = 0; performance.now() < end && !until?.(); i++) {
    pending.push(chat(key, questions[i % questions.length] ?? "question"));
    await new Promise((resolve) => setTimeout(resolve, (-Math.log(1 - random()) / perSecond) * 1000));
  }
  return Promise.all(pending);
}

const p = (outcomes: Outcome[], q: number) =>
  percentile(
    outcomes.filter((o) => o.status === 200).map((o) => o.ttftMs),
    q,
  );
const busy = () => ({ at: performance.now(), ms: dev.stats.chatBusyMs });
const busyFraction = (from: { at: number; ms: number }, to: { at: number; ms: number }) =>
  (to.ms - from.ms) / ((to.at - from.at) * CONCURRENCY);

console.log(
  `bench:batch — dev backend: ${CONCURRENCY} chats at once × ${SERVICE_MS} ms each = capacity ${CAPACITY.toFixed(1)}/s; ` +
    `interactive at 50% (${(CAPACITY / 2).toFixed(1)}/s); batch of ${LINES} chat lines; ${config.chat.scheduler.reservedForInteractive} slot(s) reserved for interactive; ` +
    `batch preemption ${config.chat.scheduler.preemptBatch ? "on" : "off"}`,
);

// 1. Interactive alone; 2. the same load while the batch runs (compared with 1).
if (phases.has("alone") || phases.has("batch")) {
  const aloneFrom = busy();
  const alone = await load(interactiveKey, CAPACITY / 2, BASELINE_SECONDS);
  const aloneBusy = busyFraction(aloneFrom, busy());
  console.log(
    `interactive alone: ${alone.length} requests, TTFT p50 ${p(alone, 50).toFixed(0)} ms, p95 ${p(alone, 95).toFixed(0)} ms; backend busy ${(100 * aloneBusy).toFixed(0)}%`,
  );
  const lines = Array.from({ length: LINES }, (_, i) =>
    JSON.stringify({
      custom_id: `line-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "rag:sci", messages: [{ role: "user", content: questions[i % questions.length] }] },
    }),
  ).join("\n");
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new File([lines], "bench.jsonl"));
  const file = (await (
    await app.http.request("/v1/files", {
      method: "POST",
      headers: { Authorization: `Bearer ${batchKey}` },
      body: form,
    })
  ).json()) as { id: string };
  const batchStarted = performance.now();
  const created = (await (
    await request(batchKey, "/v1/batches", {
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    })
  ).json()) as { id: string };
  const batchState = async () =>
    (await (
      await app.http.request(`/v1/batches/${created.id}`, { headers: { Authorization: `Bearer ${batchKey}` } })
    ).json()) as { status: string; request_counts: { completed: number; failed: number } };
  let batchDone = false;
  const withFrom = busy();
  const abortedBefore = dev.stats.abortedChats;
  const watcher = (async () => {
    while (!batchDone) {
      const state = await batchState();
      batchDone = state.status !== "in_progress";
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const withBatch = await load(interactiveKey, CAPACITY / 2, 3_600, () => batchDone);
  const withTo = busy();
  await watcher;
  const batchSeconds = (performance.now() - batchStarted) / 1000;
  const finished = await batchState();
  const withBusy = busyFraction(withFrom, withTo);
  console.log(
    `interactive with the batch running: ${withBatch.length} requests, TTFT p50 ${p(withBatch, 50).toFixed(0)} ms, p95 ${p(withBatch, 95).toFixed(0)} ms ` +
      `→ p95 ${(p(withBatch, 95) / p(alone, 95)).toFixed(2)}× alone (target ≤ 1.2×); ${withBatch.filter((o) => o.status !== 200).length} refused`,
  );
  const leftOver = CAPACITY - withBatch.length / batchSeconds;
  // Busy time spent on answers someone got: a preempted request's partial work is busy but lost.
  const useful =
    ((withBatch.length + finished.request_counts.completed) * SERVICE_MS) / (batchSeconds * 1000 * CONCURRENCY);
  console.log(
    `batch: ${finished.status}, ${finished.request_counts.completed} answered, ${finished.request_counts.failed} failed in ${batchSeconds.toFixed(1)} s → ` +
      `${(finished.request_counts.completed / batchSeconds).toFixed(1)} lines/s of the ${leftOver.toFixed(1)}/s interactive left ` +
      `(${((100 * finished.request_counts.completed) / batchSeconds / leftOver).toFixed(0)}%); backend busy while lines were pending ${(100 * withBusy).toFixed(0)}% (target ≥ 90%), ` +
      `of which answers delivered ${(100 * useful).toFixed(0)}%; ${dev.stats.abortedChats - abortedBefore} batch requests preempted`,
  );
}

// 3. Two tenants asking at 3:1, together at three times the capacity: each asks for more than its
// half. Counted: requests that got their first token while both were asking (the queue drains after).
if (phases.has("fair")) {
  const windowStart = performance.now();
  const [heavy, light] = await Promise.all([
    load(heavyKey, CAPACITY * 2.25, BASELINE_SECONDS / 2),
    load(lightKey, CAPACITY * 0.75, BASELINE_SECONDS / 2),
  ]);
  const windowEnd = windowStart + (BASELINE_SECONDS / 2) * 1000;
  const served = (outcomes: Outcome[]) =>
    outcomes.filter((o) => o.status === 200 && o.firstTokenAt >= windowStart + 2_000 && o.firstTokenAt <= windowEnd)
      .length;
  console.log(
    `fair share: asked ${heavy.length}:${light.length} (3:1); served while both asked (after a 2 s ramp) ${served(heavy)}:${served(light)} ` +
      `(${(served(heavy) / Math.max(1, served(light))).toFixed(2)}:1, target ≈ 1:1); refused with 429 ` +
      `${heavy.filter((o) => o.status === 429).length}:${light.filter((o) => o.status === 429).length}`,
  );
}

await app.stop();
await admin.db.transaction().execute(async (tx) => {
  await tx.deleteFrom("tenants").where("name", "like", `bench-batch-${run}-%`).execute();
});
await closeDbNode(admin);
