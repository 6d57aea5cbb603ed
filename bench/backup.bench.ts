/**
 * `npm run bench:backup [-- --chunks 100000]`: pgBackRest on the native topology (replicas/cluster.sh).
 * A collection of one-chunk documents (SciFact sentences, random 384-d vectors) is written 10k
 * chunks at a time; after each step a restore point archives what was written, and the WAL the step
 * produced is reported as written (the primary's WAL position) and as archived (the repository's
 * archive, compressed). Then a full backup of the whole database (time, size, MB/s) and a restore of
 * it into a new directory, replayed to the last restore point (time until it accepts writes).
 */
import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { sql } from "kysely";
import { createApp } from "../src/app.ts";
import { compactCollection } from "../src/postings/postings-compactor.ts";
import { loadConfig } from "../src/config.ts";
import { readScifactCorpus } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { sentencesOf } from "./scratch-schema.ts";
import { seeded } from "./seeded-random.ts";
import { benchCollection, writeSyntheticDocuments } from "./synthetic-documents.ts";

const { values: args } = parseArgs({ options: { chunks: { type: "string", default: "100000" } } });
const CHUNKS = Number(args.chunks);
const STEP = 10_000;
const BATCH = 1_000;
const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../replicas/cluster.sh", import.meta.url));
const CLUSTER_DIR = process.env.PGRAG_CLUSTER_DIR ?? "/var/tmp/pgrag/dev";
const REPOSITORY = process.env.PGRAG_BACKUP_DIR ?? `${CLUSTER_DIR}/backups`;
const RESTORE_DIR = `${CLUSTER_DIR}-bench-restore`;
const cluster = async (...command: string[]) =>
  (await run("bash", [SCRIPT, ...command], { maxBuffer: 1 << 24 })).stdout;

/** Bytes under a directory. */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn", PGRAG_WORKER_CONCURRENCY: "0" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
const walPosition = async () =>
  adminTransaction(app, async (tx) => {
    const { rows } = await sql<{ lsn: string; bytes: string }>`
      SELECT pg_current_wal_lsn()::text AS lsn, (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS bytes`.execute(tx);
    return { lsn: rows[0]?.lsn ?? "", bytes: Number(rows[0]?.bytes ?? 0) };
  });

await adminTransaction(app, (tx) => sql`DELETE FROM tenants WHERE name LIKE 'bench-backup-%'`.execute(tx));
const { tenantId, collectionId } = await benchCollection(app, "backup");
const sentences = (await readScifactCorpus(Number.POSITIVE_INFINITY)).flatMap((d) => sentencesOf(d.text));
const random = seeded(7);
const dimension = config.embedding.dimension;

let archived = await sizeOf(`${REPOSITORY}/archive`);
let written = (await walPosition()).bytes;
for (let step = 0; step < CHUNKS; step += STEP) {
  for (let start = step; start < Math.min(step + STEP, CHUNKS); start += BATCH) {
    const documents = Array.from({ length: BATCH }, (_, j) => ({
      externalId: `b${start + j}`,
      text: Array.from(
        { length: 4 + Math.floor(random() * 5) },
        () => sentences[Math.floor(random() * sentences.length)],
      ).join(" "),
      vector: Array.from({ length: dimension }, () => random() - 0.5),
      access: ["*"],
    }));
    await writeSyntheticDocuments(app, { tenantId, collectionId }, documents);
  }
  await cluster("restore-point", `bench-backup-${step + STEP}`);
  const [nowArchived, nowWritten] = [await sizeOf(`${REPOSITORY}/archive`), (await walPosition()).bytes];
  console.log(
    `chunks ${String(step + STEP).padStart(7)}: WAL written ${mb(nowWritten - written)}, archived ${mb(nowArchived - archived)} (compressed)`,
  );
  [archived, written] = [nowArchived, nowWritten];
}
await compactCollection(
  app.router,
  config.retrieval.bm25,
  { collectionId, tenantId },
  { maxTerms: Number.MAX_SAFE_INTEGER },
);
const databaseBytes = await adminTransaction(app, async (tx) => {
  const { rows } = await sql<{ bytes: string }>`SELECT pg_database_size(current_database())::text AS bytes`.execute(tx);
  return Number(rows[0]?.bytes ?? 0);
});

let started = performance.now();
const info = await cluster("backup", "--type", "full");
const backupMs = performance.now() - started;
// pgbackrest info lists the sets oldest first: the last one is this backup.
const lastSet = info.split(/(?=full backup: )/).at(-1) ?? "";
console.log(
  `full backup of ${mb(databaseBytes)}: ${seconds(backupMs)} (${(databaseBytes / 1024 / 1024 / (backupMs / 1000)).toFixed(0)} MB/s); ` +
    `in the repository: ${lastSet.match(/backup set size: ([^,\n]+)/)?.[1] ?? "?"}`,
);
// A point just after the backup: the restore starts from it and replays only what followed.
await cluster("restore-point", "bench-backup-done");
await cluster("discard-restore", RESTORE_DIR).catch(() => undefined);
started = performance.now();
await cluster("restore", "--to", "name:bench-backup-done", "--into", RESTORE_DIR);
const restoreMs = performance.now() - started;
console.log(
  `restore into a new directory, to the point after the backup, accepting writes: ${seconds(restoreMs)} (${(restoreMs / backupMs).toFixed(2)}× the backup)`,
);
await cluster("discard-restore", RESTORE_DIR);
await adminTransaction(app, (tx) => sql`DELETE FROM tenants WHERE id = ${tenantId}`.execute(tx));
await app.stop();
