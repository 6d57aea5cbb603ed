/**
 * `npm run bench:import [-- --documents 100000]`: the same SciFact-derived scale corpus loaded three
 * ways, in the same run, on the same database:
 *
 * 1. a bulk import (POST …/imports path, in process): staged without indexes, indexes built once in
 *    the collection's own partition, published in one transaction;
 * 2. the incremental path: batches of 500 documents through POST …/documents, the queue and the
 *    workers, every chunk inserted into the live indexes;
 * 3. the limit: the imported chunk rows COPYed into an empty table, then CREATE INDEX for each index.
 *
 * Documents are 4–8 SciFact sentences picked by a seeded generator (one chunk each at the default
 * chunking), so that term statistics and lengths look like real text. Each path starts with a cold
 * embedding cache (the dev backend's hashed embeddings). Prints wall time and chunks/s for each and
 * the ratios (target: import ≥ 3× the incremental path).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { waitFor } from "../harness/wait-for.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { readScifactCorpus } from "../src/evaluation/datasets.ts";
import type { ImportLine } from "../src/ingest/imports/imports.repository.ts";
import { createLogger } from "../src/logger.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { ensureTenant } from "../src/tenancy/api-keys.ts";
import type { Principal } from "../src/tenancy/principal.ts";
import { sentencesOf } from "./scratch-schema.ts";
import { seeded } from "./seeded-random.ts";

const { values: args } = parseArgs({
  options: { documents: { type: "string", default: process.env.BENCH_DOCUMENTS ?? "100000" } },
});
const DOCUMENTS = Number(args.documents);
const BATCH = 500;

const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "warn",
  PGRAG_WORKER_BATCH_SIZE: process.env.PGRAG_WORKER_BATCH_SIZE ?? "32",
  PGRAG_IMPORT_BATCH_DOCUMENTS: process.env.PGRAG_IMPORT_BATCH_DOCUMENTS ?? "256",
});
const run = promisify(execFile);
const url = config.database.migrationUrl;
const psql = async (...commands: string[]) =>
  (
    await run("psql", [url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", ...commands.flatMap((c) => ["-c", c])], {
      maxBuffer: 64 * 1024 * 1024,
    })
  ).stdout.trim();

// An earlier run's tenants would grow the shared graph and slow this run's incremental path.
await psql(
  "DELETE FROM tenants WHERE name LIKE 'bench-import-%'",
  // Staging tables of an interrupted run's imports, which went with their tenant.
  `DO $$ DECLARE t regclass; BEGIN
     FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'chunk_partitions' AND c.relname LIKE 'import\\_%' AND c.relkind = 'r' AND NOT c.relispartition LOOP
       EXECUTE format('DROP TABLE %s', t);
     END LOOP; END $$`,
  "VACUUM (ANALYZE) chunks, bm25_blocks, documents",
);
// ... and the replicas have replayed that clean-up: replay competes for the same two cores.
const cleanedUpTo = await psql("SELECT pg_current_wal_lsn()");
for (const replica of config.database.replicaUrls) {
  await waitFor(
    "the replicas to replay the clean-up",
    async () =>
      (await run("psql", [replica, "-XAtc", `SELECT pg_last_wal_replay_lsn() >= '${cleanedUpTo}'`])).stdout.trim() ===
      "t",
    600_000,
  );
}

const sentences = (await readScifactCorpus(Number.POSITIVE_INFINITY)).flatMap((d) => sentencesOf(d.text));
const random = seeded(29);
const corpus: ImportLine[] = Array.from({ length: DOCUMENTS }, (_, i) => {
  const picked = Array.from(
    { length: 4 + Math.floor(random() * 5) },
    () => sentences[Math.floor(random() * sentences.length)],
  );
  return {
    line: i + 1,
    externalId: `doc-${i}`,
    title: null,
    source: null,
    contentType: "text/plain",
    metadata: {},
    access: ["*"],
    content: picked.join(" "),
    file: null,
  };
});
const textBytes = corpus.reduce((n, d) => n + Buffer.byteLength(d.content), 0);
console.log(
  `bench:import — ${DOCUMENTS} documents of 4–8 SciFact sentences (${(textBytes / 1e6).toFixed(0)} MB of text), ` +
    `${config.ingest.workerConcurrency} fetch loops / ${config.ingest.workerWriters} writers, import batches of ${config.imports.batchDocuments}, maintenance_work_mem ${config.imports.maintenanceWorkMem}`,
);

const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
const admin = createAdminDbNode(config);
const principalOf = async (name: string): Promise<Principal> => ({
  tenantId: await admin.db.transaction().execute((tx) => ensureTenant(tx, name)),
  keyId: "bench",
  scopes: ["read", "write"],
  principals: null,
  owner: null,
});
const coldCache = () => sql`TRUNCATE embedding_cache`.execute(admin.db);
const chunking = { maxTokens: 384, overlapTokens: 48, minTokens: 64 };

// 1. The import.
const importer = await principalOf(`bench-import-${Date.now()}-bulk`);
await app.ingest.createCollection(importer, { name: "bulk", language: "english", chunking });
await coldCache();
const importStart = performance.now();
async function* lines() {
  yield* corpus;
}
const { value: started } = await app.imports.upload(importer, "bulk", lines());
const uploadedAt = performance.now();
const phases = new Map<string, number>();
const imported = await waitFor(
  "the import to finish",
  async () => {
    const { value } = await app.imports.getImport(importer, "bulk", started.id, null);
    if (!phases.has(value.status)) phases.set(value.status, performance.now());
    return value.status === "completed" || value.status === "failed" ? value : undefined;
  },
  24 * 3_600_000,
);
const importMs = performance.now() - importStart;
if (imported.status !== "completed") throw new Error(`the import failed: ${imported.error}`);
const importedChunks = imported.chunksStaged;

// 2. The incremental path, the same documents.
const incremental = await principalOf(`bench-import-${Date.now()}-incremental`);
await app.ingest.createCollection(incremental, { name: "incremental", language: "english", chunking });
await coldCache();
const incrementalStart = performance.now();
for (let i = 0; i < corpus.length; i += BATCH) {
  await app.ingest.putDocuments(
    incremental,
    "incremental",
    corpus
      .slice(i, i + BATCH)
      .map((d) => ({ externalId: d.externalId, content: d.content, contentType: d.contentType })),
  );
}
await waitFor(
  "the incremental documents to be ready",
  async () => {
    const { value } = await app.ingest.listDocuments(incremental, "incremental", { status: "pending", limit: 1 }, null);
    return value.length === 0;
  },
  24 * 3_600_000,
);
const incrementalMs = performance.now() - incrementalStart;
await app.stop();

// 3. The limit: COPY the imported rows into an empty table, then build the same indexes.
const dir = mkdtempSync(join(tmpdir(), "pgrag-bench-import-"));
const columns =
  "id, tenant_id, collection_id, document_id, document_version, ordinal, content, heading_path, char_start, char_end, token_count, metadata, language, embedding";
await psql(
  `SELECT set_config('pgrag.tenant_id', '${importer.tenantId}', false)`,
  `\\copy (SELECT ${columns} FROM chunks WHERE tenant_id = '${importer.tenantId}') TO '${dir}/chunks.csv' CSV`,
);
const indexes = (
  await psql(
    "SELECT string_agg(replace(pg_get_indexdef(indexrelid), 'ON ONLY public.chunks', 'ON bench_limit'), ';' ORDER BY indexrelid) FROM pg_index WHERE indrelid = 'public.chunks'::regclass",
  )
)
  .split(";")
  .map((d) => d.replace(/INDEX \w+ ON/, "INDEX ON"));
await psql(
  "DROP TABLE IF EXISTS bench_limit",
  "CREATE TABLE bench_limit (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED)",
);
const limitStart = performance.now();
await psql(`\\copy bench_limit (${columns}) FROM '${dir}/chunks.csv' CSV`);
const copiedMs = performance.now() - limitStart;
await psql(`SET maintenance_work_mem = '${config.imports.maintenanceWorkMem}'`, ...indexes);
const limitMs = performance.now() - limitStart;
await psql("DROP TABLE bench_limit");
rmSync(dir, { recursive: true, force: true });
await psql(`DELETE FROM tenants WHERE id IN ('${importer.tenantId}', '${incremental.tenantId}')`);
await closeDbNode(admin);

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rate = (ms: number) => `${(importedChunks / (ms / 1000)).toFixed(0)} chunks/s`;
const indexingAt = phases.get("indexing") ?? uploadedAt;
console.log(
  `import: ${seconds(importMs)} → ${rate(importMs)} (${importedChunks} chunks, placement ${imported.target}); ` +
    `upload ${seconds(uploadedAt - importStart)}, chunk + embed + stage ${seconds(indexingAt - uploadedAt)}, ` +
    `index build + publish ${seconds(importStart + importMs - indexingAt)}`,
);
console.log(
  `incremental (POST …/documents, ${config.ingest.workerConcurrency} fetch loops / ${config.ingest.workerWriters} writers): ${seconds(incrementalMs)} → ${rate(incrementalMs)}`,
);
console.log(
  `limit (raw COPY ${seconds(copiedMs)} + CREATE INDEX × ${indexes.length} ${seconds(limitMs - copiedMs)}): ${seconds(limitMs)} → ${rate(limitMs)}`,
);
console.log(
  `import is ${(incrementalMs / importMs).toFixed(2)}× the incremental path (target ≥ 3×) and ${((100 * limitMs) / importMs).toFixed(0)}% of the limit's speed`,
);
