/**
 * `npm run bench:ingest`: the whole SciFact corpus (5,183 abstracts) through the HTTP API, the queue,
 * the workers and the dev embedding backend, into a fresh collection. Prints chunks/s, where the
 * time went (embedding backend vs chunking, loading and writing), and the ratio of our write path
 * to a raw COPY of the same chunk rows into a table with the same indexes, in the same run.
 * `-- --warm-embeddings`: the embedding backend's work is done beforehand (an untimed first ingestion
 * fills the embedding cache), as when the backend runs on its own machine instead of these two cores.
 * `-- --backend-elsewhere`: the dev backend answers every embeddings request from vectors it recorded
 * in an untimed first ingestion, so its own work is off these cores as a GPU host's is, while the
 * platform does all of its own: the cache is empty each round, every chunk text is sent, every vector
 * decoded and written to the cache.
 * `-- --embedding-delay-ms N`: the dev backend waits N ms before each embeddings answer, as a GPU
 * host over the network does (a cold cache: what a worker waits for while it could be writing).
 * Deferred postings compaction (PGRAG_COMPACTION_DELAY_SECONDS after the first batch) is waited for
 * after each ingestion and reported apart: it runs after the documents are ready, and must not run
 * during the reference COPY or the next round.
 * `-- --rounds N` (default 3): the ingestion and the COPY reference are measured N times, in
 * alternating order, each round from the same clean database; the ratios are printed per round and
 * their median. On this shared 2-core machine one pair can swing by half (a two-writer COPY of the
 * same rows took 12.7 s in one run and 21.4 s in the next), so a single pair is not a measurement.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { sql, type Transaction } from "kysely";
import { createApp } from "../src/app.ts";
import type { Database } from "../src/db/database.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { createApiKey, ensureTenant } from "../src/tenancy/api-keys.ts";
import { waitFor } from "../harness/wait-for.ts";
import { readScifactCorpus } from "../src/evaluation/datasets.ts";
import { COMPACTION_QUEUE } from "../src/postings/compact-postings.job.ts";
import { dropBenchTenants } from "./replica-slots.ts";
import { machineBusySeconds, percentile } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    "warm-embeddings": { type: "boolean", default: false },
    "backend-elsewhere": { type: "boolean", default: false },
    "embedding-delay-ms": { type: "string", default: "0" },
    rounds: { type: "string", default: "3" },
  },
});
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a whole number ≥ 1, not "${args.rounds}"`);
const embeddingDelayMs = Number(args["embedding-delay-ms"]);
if (!Number.isInteger(embeddingDelayMs) || embeddingDelayMs < 0) {
  throw new Error(`--embedding-delay-ms takes a whole number of milliseconds, not "${args["embedding-delay-ms"]}"`);
}
if (args["warm-embeddings"] && args["backend-elsewhere"]) {
  throw new Error(
    "--warm-embeddings and --backend-elsewhere exclude each other: a warm cache sends nothing to the backend",
  );
}
const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
// Tenants, keys and progress across the tenant are the owner's business (row-level security).
const admin = createAdminDbNode(config);

// psql as the schema owner: the reference COPY, and cleaning up after earlier runs.
const run = promisify(execFile);
const url = config.database.migrationUrl;
/** Runs psql commands against `target`; returns what the last one printed, unaligned. */
const psql = async (target: string, ...commands: string[]) =>
  (
    await run("psql", [target, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", ...commands.flatMap((c) => ["-c", c])])
  ).stdout.trim();
/** Waits for the replicas to replay what the primary has written: replay competes for the same two cores. */
async function replicasCaughtUp(): Promise<void> {
  const writtenUpTo = await psql(url, "SELECT pg_current_wal_lsn()");
  for (const replica of config.database.replicaUrls) {
    await waitFor(
      "the replicas to replay the clean-up",
      async () => (await psql(replica, `SELECT pg_last_wal_replay_lsn() >= '${writtenUpTo}'`)) === "t",
      300_000,
    );
  }
}
/**
 * Every round starts from the same database: an earlier round's (or interrupted run's) tenant would
 * grow the shared HNSW graph and the postings and slow the next one down, and the vacuum its deletion
 * needs (pgvector repairs the graph around each deleted element) must not overlap a timed phase.
 */
async function startClean(): Promise<void> {
  await dropBenchTenants(admin.db, "bench-ingest-%");
  await replicasCaughtUp();
}

const corpus = await readScifactCorpus(Number.POSITIVE_INFINITY);

/** A transaction as the owner naming a tenant: row-level security binds the owner too. */
const asTenant = <T>(tenantId: string, work: (tx: Transaction<Database>) => Promise<T>) =>
  admin.db.transaction().execute(async (tx) => {
    await sql`SELECT set_config('pgrag.tenant_id', ${tenantId}, true)`.execute(tx);
    return work(tx);
  });

/** The whole corpus through the API into a new tenant's collection, until every document is done. */
async function ingestCorpus(
  tenant: string,
): Promise<{ tenantId: string; enqueuedMs: number; finishedMs: number; cpuSeconds: number }> {
  const key = await admin.db
    .transaction()
    .execute(async (tx) =>
      createApiKey(tx, { tenantId: await ensureTenant(tx, tenant), name: "bench", scopes: ["read", "write"] }),
    );
  const headers = { Authorization: `Bearer ${key.key}`, "Content-Type": "application/json" };
  await app.http.request("/v1/collections", { method: "POST", headers, body: JSON.stringify({ name: "scifact" }) });
  const started = performance.now();
  const busyBefore = machineBusySeconds();
  for (let i = 0; i < corpus.length; i += 500) {
    const documents = corpus
      .slice(i, i + 500)
      .map((d) => ({ external_id: d._id, title: d.title, content: `${d.title}\n\n${d.text}` }));
    const response = await app.http.request("/v1/collections/scifact/documents", {
      method: "POST",
      headers,
      body: JSON.stringify({ documents }),
    });
    if (response.status !== 202) throw new Error(`batch failed: ${await response.text()}`);
  }
  const enqueuedMs = performance.now() - started;
  const { id: tenantId } = await admin.db
    .transaction()
    .execute((tx) => tx.selectFrom("tenants").select("id").where("name", "=", tenant).executeTakeFirstOrThrow());
  for (;;) {
    const value = await asTenant(tenantId, (tx) =>
      tx
        .selectFrom("documents")
        .select((eb) => [eb.fn.countAll<string>().as("n")])
        .where("tenant_id", "=", tenantId)
        .where("status", "=", "pending")
        .executeTakeFirstOrThrow(),
    );
    if (Number(value.n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    tenantId,
    enqueuedMs,
    finishedMs: performance.now() - started,
    cpuSeconds: machineBusySeconds() - busyBefore,
  };
}

/**
 * Waits until the tenant's deferred postings compaction has run; returns the seconds its jobs ran and
 * how long after the documents were ready it was done.
 */
async function compactionOf(tenantId: string): Promise<{ seconds: number; doneAfterSeconds: number }> {
  const start = performance.now();
  const ofTenant = `name = '${COMPACTION_QUEUE}' AND data->>'tenantId' = '${tenantId}'`;
  await waitFor(
    "the deferred postings compaction",
    async () => (await psql(url, `SELECT count(*) FROM pgboss.job WHERE ${ofTenant} AND state <= 'active'`)) === "0",
    600_000,
  );
  const ran = await psql(
    url,
    `SELECT coalesce(sum(extract(epoch FROM completed_on - started_on)), 0) FROM pgboss.job WHERE ${ofTenant} AND state = 'completed'`,
  );
  return { seconds: Number(ran), doneAfterSeconds: (performance.now() - start) / 1000 };
}

const devBackend = app.devInference();
if ((embeddingDelayMs > 0 || args["backend-elsewhere"]) && !devBackend) {
  throw new Error(
    "--embedding-delay-ms and --backend-elsewhere need the in-process dev backend (no PGRAG_INFERENCE_URL)",
  );
}
// Warm (--warm-embeddings): a first, untimed ingestion fills the embedding cache, so the timed ones
// measure the platform without the backend and without writing the cache. Elsewhere
// (--backend-elsewhere): the same first ingestion records the backend's answers, which it then
// replays. Otherwise every round empties the cache, so every chunk text goes to the embedding
// backend, as on a first ingestion.
await startClean();
await sql`TRUNCATE embedding_cache`.execute(admin.db);
if (args["warm-embeddings"] || args["backend-elsewhere"]) {
  if (devBackend) devBackend.embeddingRecord.recording = args["backend-elsewhere"];
  const warmUp = await ingestCorpus(`bench-ingest-warmup-${Date.now()}`);
  if (devBackend) devBackend.embeddingRecord.recording = false;
  await compactionOf(warmUp.tenantId);
  await startClean();
}
if (devBackend) devBackend.faults.embeddingDelayMs = embeddingDelayMs;

interface Phase {
  seconds: number;
  /** CPU-seconds the machine's cores were busy meanwhile (every process: API, workers, database nodes). */
  cpuSeconds: number;
}

interface Ingestion extends Phase {
  chunks: number;
  documents: number;
  acceptSeconds: number;
  /** Worker seconds per stage, summed over the workers. */
  stages: Map<string, number>;
  compaction: { seconds: number; doneAfterSeconds: number };
}

/** One timed ingestion of the corpus into a new tenant; the tenant stays until the next clean start. */
async function timedIngestion(): Promise<Ingestion & { tenantId: string }> {
  if (!args["warm-embeddings"]) await sql`TRUNCATE embedding_cache`.execute(admin.db);
  app.registry.getSingleMetric("pgrag_ingest_stage_seconds")?.reset();
  const { tenantId, enqueuedMs, finishedMs, cpuSeconds } = await ingestCorpus(`bench-ingest-${Date.now()}`);
  const counts = await asTenant(tenantId, (tx) =>
    tx
      .selectFrom("documents")
      .select((eb) => [eb.fn.sum<string>("chunk_count").as("chunks"), eb.fn.countAll<string>().as("docs")])
      .where("tenant_id", "=", tenantId)
      .where("status", "=", "ready")
      .executeTakeFirstOrThrow(),
  );
  const compaction = await compactionOf(tenantId);
  const stages = new Map<string, number>();
  const metric = await app.registry.getSingleMetric("pgrag_ingest_stage_seconds")?.get();
  for (const v of (metric?.values ?? []) as { metricName?: string; labels: { stage?: string }; value: number }[]) {
    if (v.metricName?.endsWith("_sum") && v.labels.stage) stages.set(v.labels.stage, v.value);
  }
  return {
    tenantId,
    chunks: Number(counts.chunks),
    documents: Number(counts.docs),
    seconds: finishedMs / 1000,
    cpuSeconds,
    acceptSeconds: enqueuedMs / 1000,
    stages,
    compaction,
  };
}

// The reference: COPY the same chunk rows and their BM25 postings into tables with the same indexes
// (GIN on tsv, HNSW on embedding, the postings' primary key), exported once from the first round's
// tenant. By two writers at once, the most this database takes on this machine; by one writer too
// when the workers write one batch at a time, as then our write path is.
const dir = mkdtempSync(join(tmpdir(), "pgrag-bench-"));
const columns =
  "tenant_id, collection_id, document_id, document_version, ordinal, content, heading_path, char_start, char_end, token_count, metadata, language, embedding";
const halves = [0, 1];
async function exportRows(tenantId: string): Promise<void> {
  for (const half of halves) {
    const ofHalf = `tenant_id = '${tenantId}' AND hashtext(document_id::text) & 1 = ${half}`;
    await psql(
      url,
      `SELECT set_config('pgrag.tenant_id', '${tenantId}', false)`,
      `\\copy (SELECT ${columns} FROM chunks WHERE ${ofHalf}) TO '${dir}/chunks${half}.csv' CSV`,
      // Postings as the write path leaves them: blocks (one per term per statement), half of them each.
      `\\copy (SELECT collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, first_chunk, last_chunk, data FROM bm25_blocks WHERE tenant_id = '${tenantId}' AND block_id % 2 = ${half}) TO '${dir}/terms${half}.csv' CSV`,
    );
  }
}
const copyHalf = (half: number) => [
  `\\copy bench_copy_chunks (${columns}) FROM '${dir}/chunks${half}.csv' CSV`,
  `\\copy bench_copy_terms (collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, first_chunk, last_chunk, data) FROM '${dir}/terms${half}.csv' CSV`,
];
const resetTables =
  "DROP TABLE IF EXISTS bench_copy_chunks, bench_copy_terms; " +
  "CREATE TABLE bench_copy_chunks (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING INDEXES); " +
  "CREATE TABLE bench_copy_terms (LIKE bm25_blocks INCLUDING ALL)";
const writers = config.ingest.workerWriters;

/** A raw COPY of the exported rows into fresh tables, by one writer or two at once. */
async function timedCopy(concurrent: boolean): Promise<Phase> {
  await psql(url, resetTables);
  await replicasCaughtUp();
  const start = performance.now();
  const busyBefore = machineBusySeconds();
  if (concurrent) await Promise.all(halves.map((half) => psql(url, ...copyHalf(half))));
  else await psql(url, ...halves.flatMap(copyHalf));
  const phase = { seconds: (performance.now() - start) / 1000, cpuSeconds: machineBusySeconds() - busyBefore };
  await psql(url, "DROP TABLE bench_copy_chunks, bench_copy_terms");
  return phase;
}

interface Round {
  ingestion: Ingestion;
  twoWriterCopy: Phase;
  oneWriterCopy: Phase | null;
}

async function timedCopies(): Promise<Pick<Round, "twoWriterCopy" | "oneWriterCopy">> {
  return {
    twoWriterCopy: await timedCopy(true),
    oneWriterCopy: writers === 1 ? await timedCopy(false) : null,
  };
}

// Ingestion then COPY, COPY then ingestion, …: a slow stretch of the machine, or whatever the
// order leaves behind, does not always land on the same side.
const measured: Round[] = [];
for (let round = 0; round < rounds; round++) {
  if (round > 0) await startClean();
  if (round % 2 === 0) {
    const ingestion = await timedIngestion();
    if (round === 0) await exportRows(ingestion.tenantId);
    measured.push({ ingestion, ...(await timedCopies()) });
  } else {
    const copies = await timedCopies();
    measured.push({ ingestion: await timedIngestion(), ...copies });
  }
}
await startClean();
await app.stop();
await closeDbNode(admin);
rmSync(dir, { recursive: true, force: true });

const first = measured[0] as Round;
const mode = args["warm-embeddings"]
  ? "warm embedding cache (nothing sent to the backend, nothing written to the cache)"
  : args["backend-elsewhere"]
    ? "cold embedding cache, the backend's answers replayed (its work off these cores, the platform's all on them)"
    : "cold embedding cache, the dev backend embedding on these cores";
console.log(
  `bench:ingest — SciFact ${first.ingestion.documents}/${corpus.length} documents ready, ${first.ingestion.chunks} chunks, ${config.ingest.workerConcurrency} fetch loops, ${writers} writers, ` +
    `${config.ingest.workerBatchSize} jobs per batch, ${mode}` +
    (embeddingDelayMs > 0 ? `, the backend answering after ${embeddingDelayMs} ms` : "") +
    `; ${rounds} round(s)`,
);
const cores = cpus().length;
const ratios = measured.map((r, i) => {
  const { chunks, seconds, cpuSeconds, acceptSeconds, stages, compaction } = r.ingestion;
  const endToEnd = chunks / seconds;
  const twoWriterCopy = chunks / r.twoWriterCopy.seconds;
  // Throughput per writer-second: chunks ÷ time spent writing summed over the writers, so that our
  // workers and COPY compare at the same number of concurrent writers.
  const oursPerWriterSecond = chunks / (stages.get("write") ?? Number.NaN);
  const copyPerWriterSecond =
    r.oneWriterCopy === null ? twoWriterCopy / halves.length : chunks / r.oneWriterCopy.seconds;
  const ratio = {
    endToEnd: endToEnd / twoWriterCopy,
    writePath: oursPerWriterSecond / copyPerWriterSecond,
    // The work each took, whatever else slowed the machine: COPY's CPU-seconds ÷ ours.
    cpu: r.twoWriterCopy.cpuSeconds / cpuSeconds,
  };
  const busy = (phase: Phase) =>
    `${phase.cpuSeconds.toFixed(1)} CPU-s, ${percent(phase.cpuSeconds / (cores * phase.seconds))} busy`;
  console.log(
    `round ${i + 1}: end to end ${seconds.toFixed(1)} s (API accepted all in ${acceptSeconds.toFixed(1)} s; ${busy(r.ingestion)}) → ${endToEnd.toFixed(0)} chunks/s; ` +
      `raw COPY by two writers ${r.twoWriterCopy.seconds.toFixed(2)} s (${busy(r.twoWriterCopy)}) → ${twoWriterCopy.toFixed(0)} chunks/s` +
      (r.oneWriterCopy === null ? "" : `, by one ${r.oneWriterCopy.seconds.toFixed(2)} s`) +
      ` → end to end ${percent(ratio.endToEnd)} of two-writer COPY (CPU work: COPY's ${percent(ratio.cpu)} of ours); write path ${oursPerWriterSecond.toFixed(0)} chunks per writer-second, ${percent(ratio.writePath)} of COPY's`,
  );
  console.log(
    `  worker seconds by stage (summed over workers): ${[...stages].map(([stage, s]) => `${stage} ${s.toFixed(2)}`).join(", ")}; ` +
      `deferred compaction ran ${compaction.seconds.toFixed(1)} s, done ${compaction.doneAfterSeconds.toFixed(1)} s after the documents were ready`,
  );
  return ratio;
});
console.log(
  "  (embed = cache look-up + embedding backend + cache write; write = chunk rows + postings + stats in one transaction per batch)",
);
const summary = (values: number[]) =>
  `median ${percent(percentile(values, 50))} (${percent(Math.min(...values))}–${percent(Math.max(...values))})`;
console.log(
  `end to end vs two-writer raw COPY of the same rows (same indexes, the most this machine's database takes): ${summary(ratios.map((r) => r.endToEnd))} (#18: ≥ 80%)`,
);
console.log(`CPU work of two-writer raw COPY as a share of ours: ${summary(ratios.map((r) => r.cpu))}`);
console.log(
  `our write path vs raw COPY at ${Math.min(writers, 2)} writer(s), per writer-second: ${summary(ratios.map((r) => r.writePath))}`,
);
console.log(
  `end to end: median ${percentile(
    measured.map((r) => r.ingestion.chunks / r.ingestion.seconds),
    50,
  ).toFixed(0)} chunks/s (target ≥ 1000)`,
);

function percent(ratio: number): string {
  return `${(100 * ratio).toFixed(0)}%`;
}
