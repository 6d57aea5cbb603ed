/**
 * `npm run bench:ingest`: the whole SciFact corpus (5,183 abstracts) through the HTTP API, the queue,
 * the workers and the dev embedding backend, into a fresh collection. Prints chunks/s, where the
 * time went (embedding backend vs chunking, loading and writing), and the ratio of our write path
 * to a raw COPY of the same chunk rows into a table with the same indexes, in the same run.
 * `-- --warm-embeddings`: the embedding backend's work is done beforehand (an untimed first ingestion
 * fills the embedding cache), as when the backend runs on its own machine instead of these two cores.
 * `-- --embedding-delay-ms N`: the dev backend waits N ms before each embeddings answer, as a GPU
 * host over the network does (a cold cache: what a worker waits for while it could be writing).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

const { values: args } = parseArgs({
  options: {
    "warm-embeddings": { type: "boolean", default: false },
    "embedding-delay-ms": { type: "string", default: "0" },
  },
});
const embeddingDelayMs = Number(args["embedding-delay-ms"]);
if (!Number.isInteger(embeddingDelayMs) || embeddingDelayMs < 0) {
  throw new Error(`--embedding-delay-ms takes a whole number of milliseconds, not "${args["embedding-delay-ms"]}"`);
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
// Every run starts from the same database: an earlier (interrupted) run's tenant would grow the
// shared HNSW graph and the postings, and slow this run down.
await psql(
  url,
  "DELETE FROM tenants WHERE name LIKE 'bench-ingest-%'",
  "VACUUM (ANALYZE) chunks, bm25_blocks, bm25_deletions, documents",
);
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
await replicasCaughtUp();

const corpus = await readScifactCorpus(Number.POSITIVE_INFINITY);

/** A transaction as the owner naming a tenant: row-level security binds the owner too. */
const asTenant = <T>(tenantId: string, work: (tx: Transaction<Database>) => Promise<T>) =>
  admin.db.transaction().execute(async (tx) => {
    await sql`SELECT set_config('pgrag.tenant_id', ${tenantId}, true)`.execute(tx);
    return work(tx);
  });

/** The whole corpus through the API into a new tenant's collection, until every document is done. */
async function ingestCorpus(tenant: string): Promise<{ tenantId: string; enqueuedMs: number; finishedMs: number }> {
  const key = await admin.db
    .transaction()
    .execute(async (tx) =>
      createApiKey(tx, { tenantId: await ensureTenant(tx, tenant), name: "bench", scopes: ["read", "write"] }),
    );
  const headers = { Authorization: `Bearer ${key.key}`, "Content-Type": "application/json" };
  await app.http.request("/v1/collections", { method: "POST", headers, body: JSON.stringify({ name: "scifact" }) });
  const started = performance.now();
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
        .where("status", "in", ["pending", "processing"])
        .executeTakeFirstOrThrow(),
    );
    if (Number(value.n) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { tenantId, enqueuedMs, finishedMs: performance.now() - started };
}

// A cold embedding cache: every chunk text goes to the embedding backend, as on a first ingestion.
// Warm (--warm-embeddings): a first, untimed ingestion (then deleted) fills the cache, so the timed
// one measures the platform's own work, as with an embedding backend on another machine.
await sql`TRUNCATE embedding_cache`.execute(admin.db);
if (args["warm-embeddings"]) {
  const warmUp = await ingestCorpus(`bench-ingest-warmup-${Date.now()}`);
  await psql(
    url,
    `DELETE FROM tenants WHERE id = '${warmUp.tenantId}'`,
    "VACUUM (ANALYZE) chunks, bm25_blocks, documents",
  );
  await replicasCaughtUp();
}
const devBackend = app.devInference();
if (embeddingDelayMs > 0) {
  if (!devBackend) throw new Error("--embedding-delay-ms needs the in-process dev backend (no PGRAG_INFERENCE_URL)");
  devBackend.faults.embeddingDelayMs = embeddingDelayMs;
}
app.registry.getSingleMetric("pgrag_ingest_stage_seconds")?.reset();
const { tenantId, enqueuedMs, finishedMs } = await ingestCorpus(`bench-ingest-${Date.now()}`);
const counts = await asTenant(tenantId, (tx) =>
  tx
    .selectFrom("documents")
    .select((eb) => [eb.fn.sum<string>("chunk_count").as("chunks"), eb.fn.countAll<string>().as("docs")])
    .where("tenant_id", "=", tenantId)
    .where("status", "=", "ready")
    .executeTakeFirstOrThrow(),
);
const stageSums = new Map<string, number>();
const stages = await app.registry.getSingleMetric("pgrag_ingest_stage_seconds")?.get();
for (const v of (stages?.values ?? []) as { metricName?: string; labels: { stage?: string }; value: number }[]) {
  if (v.metricName?.endsWith("_sum") && v.labels.stage) stageSums.set(v.labels.stage, v.value);
}
await app.stop();
await closeDbNode(admin);

// The reference: COPY the same chunk rows and their BM25 postings into tables with the same indexes
// (GIN on tsv, HNSW on embedding, the postings' primary key). Once by one writer, as our per-worker
// write path is; once by two writers at the same time, the most this database takes on this machine.
const dir = mkdtempSync(join(tmpdir(), "pgrag-bench-"));
const columns =
  "tenant_id, collection_id, document_id, document_version, ordinal, content, heading_path, char_start, char_end, token_count, metadata, language, embedding";
const halves = [0, 1];
for (const half of halves) {
  const ofHalf = `tenant_id = '${tenantId}' AND hashtext(document_id::text) & 1 = ${half}`;
  await psql(
    url,
    `SELECT set_config('pgrag.tenant_id', '${tenantId}', false)`,
    `\\copy (SELECT ${columns} FROM chunks WHERE ${ofHalf}) TO '${dir}/chunks${half}.csv' CSV`,
    // Postings as the write path leaves them: blocks (one per term per statement), half of them each.
    `\\copy (SELECT collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, chunk_ids, tfs, dls FROM bm25_blocks WHERE tenant_id = '${tenantId}' AND block_id % 2 = ${half}) TO '${dir}/terms${half}.csv' CSV`,
  );
}
const copyHalf = (half: number) => [
  `\\copy bench_copy_chunks (${columns}) FROM '${dir}/chunks${half}.csv' CSV`,
  `\\copy bench_copy_terms (collection_id, term, tenant_id, postings, max_tf, min_dl, compacted, chunk_ids, tfs, dls) FROM '${dir}/terms${half}.csv' CSV`,
];
const resetTables =
  "DROP TABLE IF EXISTS bench_copy_chunks, bench_copy_terms; " +
  "CREATE TABLE bench_copy_chunks (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING INDEXES); " +
  "CREATE TABLE bench_copy_terms (LIKE bm25_blocks INCLUDING ALL)";
await psql(url, resetTables);
const serialStart = performance.now();
await psql(url, ...halves.flatMap(copyHalf));
const serialMs = performance.now() - serialStart;
await psql(url, resetTables);
const parallelStart = performance.now();
await Promise.all(halves.map((half) => psql(url, ...copyHalf(half))));
const parallelMs = performance.now() - parallelStart;
await psql(url, "DROP TABLE bench_copy_chunks, bench_copy_terms", `DELETE FROM tenants WHERE id = '${tenantId}'`);
rmSync(dir, { recursive: true, force: true });

const chunks = Number(counts.chunks);
const totalS = finishedMs / 1000;
const writeS = stageSums.get("write") ?? 0;
const writers = config.ingest.workerWriters;
const endToEnd = chunks / totalS;
console.log(
  `bench:ingest — SciFact ${counts.docs}/${corpus.length} documents ready, ${chunks} chunks, ${config.ingest.workerConcurrency} fetch loops, ${writers} writers, ` +
    `${config.ingest.workerBatchSize} jobs per batch, ${args["warm-embeddings"] ? "warm embedding cache (the backend's work done beforehand)" : "cold embedding cache"}` +
    (embeddingDelayMs > 0 ? `, the backend answering after ${embeddingDelayMs} ms` : ""),
);
console.log(
  `end to end: ${totalS.toFixed(1)} s (API accepted all in ${(enqueuedMs / 1000).toFixed(1)} s) → ${endToEnd.toFixed(0)} chunks/s (target ≥ 1000)`,
);
console.log("worker time by stage (summed over workers):");
for (const [stage, seconds] of stageSums) console.log(`  ${stage.padEnd(6)} ${seconds.toFixed(2)} s`);
console.log(
  `  (embed = cache look-up + embedding backend + cache write; write = chunk rows + postings + stats in one transaction per batch)`,
);
// Throughput per writer-second: chunks ÷ time spent writing summed over the writers, so that our
// workers and COPY compare at the same number of concurrent writers.
const oursPerWriterSecond = chunks / writeS;
const serialPerWriterSecond = chunks / (serialMs / 1000);
const parallelPerSecond = chunks / (parallelMs / 1000);
const parallelPerWriterSecond = parallelPerSecond / halves.length;
const copyAtOurConcurrency = writers === 1 ? serialPerWriterSecond : parallelPerWriterSecond;
console.log(
  `raw COPY of the same ${chunks} chunk rows + their postings (same indexes): one writer ${(serialMs / 1000).toFixed(2)} s → ${serialPerWriterSecond.toFixed(0)} chunks/s; ` +
    `two writers at once ${(parallelMs / 1000).toFixed(2)} s → ${parallelPerSecond.toFixed(0)} chunks/s (${parallelPerWriterSecond.toFixed(0)} per writer-second)`,
);
console.log(
  `our write path: ${oursPerWriterSecond.toFixed(0)} chunks per writer-second (${writers} writing concurrently) → ` +
    `${((100 * oursPerWriterSecond) / copyAtOurConcurrency).toFixed(0)}% of raw COPY at ${Math.min(writers, 2)} writer(s) (target ≥ 50%)`,
);
console.log(
  `end to end is ${((100 * endToEnd) / parallelPerSecond).toFixed(0)}% of two-writer raw COPY, the most this machine's database takes with these indexes`,
);
