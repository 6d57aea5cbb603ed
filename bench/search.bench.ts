/**
 * `npm run bench:search`: hybrid queries/s through the HTTP API vs. the same SQL run by pgbench
 * against the same replica (through the same PgBouncer database), in the same run. The SQL for
 * pgbench is recorded from the very query functions the search service runs (a Kysely instance that
 * logs instead of executing), with each query's parameters inlined, so both sides do the same work.
 * SciFact is loaded first (a no-op when it is already there).
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CompiledQuery,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from "kysely";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { loadBeirCollection, readBeirQueries } from "../src/evaluation/beir.ts";
import { EmbeddingClient } from "../src/inference/embedding-client.ts";
import { createLogger } from "../src/logger.ts";
import {
  bm25Search,
  chunkDetails,
  type SearchScope,
  vectorSearchExact,
  vectorSearchIndexed,
} from "../src/retrieval/search.sql.ts";
import { SCIFACT_DIR } from "../test/helpers/shared-data.ts";

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 50);
const K = 10;

const base = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const replicaUrl = base.database.replicaUrls[0];
if (!replicaUrl) throw new Error("bench:search needs a replica");
// The API reads from that one replica only, so both sides load the same server.
const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn", PGRAG_REPLICA_URLS: replicaUrl, PGRAG_PORT: "0", PGRAG_POOL_SIZE: String(CONCURRENCY),
  // The benchmark is one key at full speed: the per-key rate limit would measure itself.
  PGRAG_RATE_LIMIT_PER_SECOND: "1000000", PGRAG_RATE_LIMIT_BURST: "1000000" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start();
const { principal, apiKey, collection } = await loadBeirCollection(app, SCIFACT_DIR, (line) => console.log(line));
const { queries: allQueries } = await readBeirQueries(SCIFACT_DIR, "train");
const queries = allQueries.slice(0, QUERIES).map((q) => q.text);

// ---- record the SQL of each query, as the service runs it ----
const recorded: CompiledQuery[] = [];
const recorder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
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

const embeddings = new EmbeddingClient(app.inferenceUrl(), config);
const { value: collectionRow } = await app.router.read({ tenantId: principal.tenantId }, (db) =>
  db.selectFrom("collections").select(["id"]).where("tenant_id", "=", principal.tenantId).where("name", "=", collection).executeTakeFirstOrThrow(),
);
const scope: SearchScope = { tenantId: principal.tenantId, collectionIds: [collectionRow.id], language: "english", documentIds: null, filter: undefined };
const dir = mkdtempSync(join(tmpdir(), "pgrag-bench-search-"));
const scripts: string[] = [];
const candidates = Math.max(4 * K, 40);
for (const [i, query] of queries.entries()) {
  const [embedding] = await embeddings.embed([query]);
  if (!embedding) throw new Error("no query embedding");
  const outcome = await app.search.search(principal, { query, collections: [collection], mode: "hybrid", k: K }, null);
  recorded.length = 0;
  // The router's tenant statement, as every tenant read runs it (row-level security).
  await sql`SELECT set_config('pgrag.tenant_id', ${principal.tenantId}, true)`.execute(recorder);
  // The collection lookup and its chunk count are cached by the service after the first query, so a
  // steady-state query runs neither; the recorded script leaves them out too.
  if (outcome.vectorPath === "exact") await vectorSearchExact(recorder, scope, embedding, candidates);
  else await vectorSearchIndexed(recorder, scope, embedding, candidates, config.retrieval.efSearch);
  await bm25Search(recorder, scope, query, candidates, config.retrieval.bm25);
  await chunkDetails(recorder, principal.tenantId, outcome.hits.map((h) => h.chunkId));
  const file = join(dir, `q${i}.sql`);
  writeFileSync(file, `BEGIN;\n${recorded.map((q) => `${inline(q)};`).join("\n")}\nCOMMIT;\n`);
  scripts.push(file);
}

// ---- HTTP: CONCURRENCY clients for SECONDS, the same queries round-robin, from a process of their own ----
const load = JSON.parse(
  await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./http-load.ts", import.meta.url)), JSON.stringify({
        url: `http://127.0.0.1:${app.port()}/v1/search`,
        apiKey,
        bodies: queries.map((query) => ({ collection, query, mode: "hybrid", k: K })),
        concurrency: CONCURRENCY,
        seconds: SECONDS,
      })],
      { maxBuffer: 64 << 20 },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    ),
  ),
) as { completed: number; errors: number; latencies: number[] };
const { completed, errors, latencies } = load;
const httpQps = completed / SECONDS;

// ---- pgbench: the recorded SQL, same replica, same PgBouncer database, same concurrency ----
const target = new URL(replicaUrl);
const output = execFileSync(
  "pgbench",
  ["-n", "-c", String(CONCURRENCY), "-j", "2", "-T", String(SECONDS), ...scripts.flatMap((f) => ["-f", f]), "-h", target.hostname, "-p", target.port, "-U", decodeURIComponent(target.username), target.pathname.slice(1)],
  { env: { ...process.env, PGPASSWORD: decodeURIComponent(target.password) }, encoding: "utf8" },
);
const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? Number.NaN);
const failedMatch = /number of failed transactions: (\d+)/.exec(output);
rmSync(dir, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? Number.NaN;
console.log(`bench:search — hybrid, k=${K}, ${queries.length} SciFact queries, ${CONCURRENCY} concurrent clients (HTTP from a separate process), ${SECONDS} s each, one replica (${new URL(replicaUrl).pathname.slice(1)})`);
console.log(`HTTP API: ${httpQps.toFixed(1)} queries/s, ${errors} errors, latency p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms`);
console.log(`pgbench, same SQL: ${tps.toFixed(1)} transactions/s${failedMatch ? `, ${failedMatch[1]} failed` : ""}`);
console.log(`ratio HTTP / pgbench: ${((100 * httpQps) / tps).toFixed(0)}% (target ≥ 70%)`);
await app.stop();
