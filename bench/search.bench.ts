/**
 * `npm run bench:search`: hybrid queries/s through the HTTP API vs. the same SQL run by pgbench
 * against the same replica (through the same PgBouncer database), in the same run. The SQL for
 * pgbench is recorded from the very query functions the search service runs (on a Kysely instance
 * that logs what it executes, in a read transaction as the tenant on the same replica: BM25's rounds
 * depend on what the first query read), with each query's parameters inlined, so both sides do the
 * same work.
 * SciFact is loaded first (a no-op when it is already there).
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CompiledQuery, Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { Registry } from "prom-client";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { beginStatement } from "../src/db/router.ts";
import { loadBeirCollection, readBeirQueries } from "../src/evaluation/beir.ts";
import { EmbeddingClient } from "../src/inference/embedding-client.ts";
import { createLogger } from "../src/logger.ts";
import type { Database } from "../src/db/database.ts";
import { bm25Search } from "../src/retrieval/bm25-search.ts";
import { vectorIndexOf } from "../src/retrieval/search.service.ts";
import {
  chunkDetails,
  hnswSettings,
  type SearchScope,
  vectorSearchExact,
  vectorSearchIndexed,
} from "../src/retrieval/search.repository.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 50);
const K = 10;

const base = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const replicaUrl = base.database.replicaUrls[0];
if (!replicaUrl) throw new Error("bench:search needs a replica");
// The API reads from that one replica only, so both sides load the same server.
const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_REPLICA_URLS: replicaUrl,
  PGRAG_PORT: "0",
  PGRAG_POOL_SIZE: String(CONCURRENCY),
  // The benchmark is one key at full speed: the per-key rate limit would measure itself.
  PGRAG_RATE_LIMIT_PER_SECOND: "1000000",
  PGRAG_RATE_LIMIT_BURST: "1000000",
  PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "1000000",
});
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const { principal, apiKey, collection, token } = await loadBeirCollection(app, SCIFACT_DIR, (line) =>
  console.log(line),
);
const { queries: allQueries } = await readBeirQueries(SCIFACT_DIR, "train");
const queries = allQueries.slice(0, QUERIES).map((q) => q.text);

// ---- record the SQL of each query, as the service runs it ----
const recorded: CompiledQuery[] = [];
const recordingPool = new pg.Pool({ connectionString: replicaUrl, max: 1 });
const recordingDb = new Kysely<Database>({
  dialect: new PostgresDialect({ pool: recordingPool }),
  log: (event) => {
    if (event.level === "query") recorded.push(event.query);
  },
});
const prepareValue = createRequire(import.meta.url)("pg/lib/utils.js").prepareValue as (value: unknown) => unknown;
const literal = (value: unknown): string => {
  const prepared = prepareValue(value);
  if (prepared === null || prepared === undefined) return "NULL";
  return `'${String(prepared).replaceAll("'", "''")}'`;
};
const inline = (q: CompiledQuery) => q.sql.replace(/\$(\d+)/g, (_, n: string) => literal(q.parameters[Number(n) - 1]));

const embeddings = new EmbeddingClient(app.inferenceBackend(), config, new Registry());
const { value: collectionRow } = await app.router.read({ tenantId: principal.tenantId }, (db) =>
  db
    .selectFrom("collections")
    .select(["id"])
    .where("tenant_id", "=", principal.tenantId)
    .where("name", "=", collection)
    .executeTakeFirstOrThrow(),
);
const scope: SearchScope = {
  tenantId: principal.tenantId,
  collectionIds: [collectionRow.id],
  language: "english",
  documentIds: null,
  principals: null,
  filter: undefined,
};
const dir = mkdtempSync(join(tmpdir(), "pgrag-bench-search-"));
const scripts: string[] = [];
const candidates = Math.max(4 * K, 40);
for (const [i, query] of queries.entries()) {
  const [embedding] = await embeddings.embed([query], { tenantId: principal.tenantId, priority: "interactive" });
  if (!embedding) throw new Error("no query embedding");
  const outcome = await app.search.search(principal, { query, collections: [collection], mode: "hybrid", k: K }, token);
  const settings = { "pgrag.tenant_id": principal.tenantId, ...hnswSettings(config.retrieval.efSearch) };
  await recordingDb.transaction().execute(async (tx) => {
    await sql`SELECT ${sql.join(Object.entries(settings).map(([name, value]) => sql`set_config(${name}, ${value}, true)`))}`.execute(
      tx,
    );
    recorded.length = 0;
    // The collection lookup and its chunk count are cached by the service after the first query, so a
    // steady-state query runs neither; the recorded script leaves them out too.
    if (outcome.vectorPath === "exact") await vectorSearchExact(tx, scope, embedding, candidates);
    else await vectorSearchIndexed(tx, scope, embedding, candidates, vectorIndexOf(config));
    await bm25Search(tx, scope, query, candidates, config.retrieval.bm25);
    await chunkDetails(
      tx,
      principal.tenantId,
      outcome.hits.map((h) => h.chunkId),
    );
  });
  const file = join(dir, `q${i}.sql`);
  // The router's first round trip, BEGIN with the tenant and HNSW settings, as one compound
  // query (pgbench's \; sends both statements in one message, as the router does).
  const begin = beginStatement(settings);
  writeFileSync(file, `${begin.replace("; ", "\\; ")};\n${recorded.map((q) => `${inline(q)};`).join("\n")}\nCOMMIT;\n`);
  scripts.push(file);
}

// ---- alternating rounds: HTTP (CONCURRENCY clients from a process of their own, the same queries
// round-robin), then pgbench (the recorded SQL, same replica, same PgBouncer database, same
// concurrency). Alternating keeps a noisy neighbour or an autovacuum from favouring one side. ----
async function httpRound(seconds = SECONDS): Promise<{ completed: number; errors: number; latencies: number[] }> {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("./http-load.ts", import.meta.url)),
        JSON.stringify({
          url: `http://127.0.0.1:${app.port()}/v1/search`,
          apiKey,
          bodies: queries.map((query) => ({ collection, query, mode: "hybrid", k: K })),
          concurrency: CONCURRENCY,
          seconds,
        }),
      ],
      { maxBuffer: 64 << 20 },
      (error, out) => (error ? reject(error) : resolve(out)),
    ),
  );
  return JSON.parse(stdout) as { completed: number; errors: number; latencies: number[] };
}

const target = new URL(replicaUrl);
function pgbenchRound(): { tps: number; failed: number } {
  const output = execFileSync(
    "pgbench",
    [
      "-n",
      "-c",
      String(CONCURRENCY),
      "-j",
      "2",
      "-T",
      String(SECONDS),
      ...scripts.flatMap((f) => ["-f", f]),
      "-h",
      target.hostname,
      "-p",
      target.port,
      "-U",
      decodeURIComponent(target.username),
      target.pathname.slice(1),
    ],
    { env: { ...process.env, PGPASSWORD: decodeURIComponent(target.password) }, encoding: "utf8" },
  );
  return {
    tps: Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? Number.NaN),
    failed: Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0),
  };
}

// Unmeasured warm-up: the API's JIT, its connection pool and its caches, as pgbench needs none.
await httpRound(3);
const rounds: { httpQps: number; tps: number }[] = [];
const latencies: number[] = [];
let completed = 0;
let errors = 0;
let failed = 0;
for (let round = 0; round < ROUNDS; round++) {
  const http = await httpRound();
  const sqlSide = pgbenchRound();
  completed += http.completed;
  errors += http.errors;
  failed += sqlSide.failed;
  latencies.push(...http.latencies);
  rounds.push({ httpQps: http.completed / SECONDS, tps: sqlSide.tps });
}
rmSync(dir, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? Number.NaN;
const ratios = rounds.map((r) => r.httpQps / r.tps).sort((a, b) => a - b);
const median = ratios[Math.floor(ratios.length / 2)] ?? Number.NaN;
console.log(
  `bench:search — hybrid, k=${K}, ${queries.length} SciFact queries, ${CONCURRENCY} concurrent clients (HTTP from a separate process), ${ROUNDS} alternating rounds of ${SECONDS} s per side, one replica (${target.pathname.slice(1)})`,
);
for (const [i, r] of rounds.entries()) {
  console.log(
    `  round ${i + 1}: HTTP ${r.httpQps.toFixed(1)} queries/s, pgbench ${r.tps.toFixed(1)} transactions/s → ${((100 * r.httpQps) / r.tps).toFixed(0)}%`,
  );
}
console.log(
  `HTTP API: ${(completed / (SECONDS * ROUNDS)).toFixed(1)} queries/s, ${errors} errors, latency p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms`,
);
console.log(
  `pgbench, same SQL: ${(rounds.reduce((sum, r) => sum + r.tps, 0) / ROUNDS).toFixed(1)} transactions/s, ${failed} failed`,
);
console.log(
  "(the API embeds each distinct query once, then serves it from its query-embedding cache: the bench's queries repeat, so neither side pays the embedding backend per request)",
);
console.log(
  `ratio HTTP / pgbench: median of rounds ${(100 * median).toFixed(0)}% (range ${(100 * (ratios[0] ?? 0)).toFixed(0)}–${(100 * (ratios.at(-1) ?? 0)).toFixed(0)}%; target ≥ 70%)`,
);
await app.stop();
await recordingDb.destroy();
