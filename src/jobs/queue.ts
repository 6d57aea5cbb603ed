import { CompiledQuery, type Kysely } from "kysely";
import PgBoss from "pg-boss";
import { Gauge, type Registry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";
import { IMPORT_QUEUE, type ImportJob } from "../ingest/imports/import-runner.ts";
import { COMPACTION_QUEUE, type CompactionJob } from "../postings/postings-compactor.ts";

export const INGEST_QUEUE = "ingest-document";

export interface IngestJobData {
  readonly documentId: string;
  readonly version: number;
}

export interface QueueOptions {
  /** A job whose worker died is failed, and so retried, after this long. */
  readonly jobExpireSeconds: number;
  /** How often expired jobs are looked for (pg-boss maintenance). */
  readonly maintenanceIntervalSeconds: number;
}

/**
 * pg-boss over the router's primary executor. Its schema and the ingest queue are created by the
 * migrations, so the application role needs no DDL and start-up does not migrate.
 */
export function createJobQueue(
  router: Router,
  options: QueueOptions,
  registry: Registry,
  logger: Logger,
): {
  boss: PgBoss;
  enqueue: typeof enqueue;
  requestCompaction: typeof requestCompaction;
  startImport: typeof startImport;
} {
  const boss = new PgBoss({
    db: router.primarySqlExecutor(),
    schema: "pgboss",
    migrate: false,
    schedule: false,
    supervise: true,
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds,
  });
  // pg-boss reports background errors (a maintenance run during a failover) as events; it goes on
  // by itself, so they are warnings, not crashes.
  boss.on("error", (error) => logger.warn({ err: error }, "job queue background error; pg-boss goes on"));
  new Gauge({
    name: "pgrag_ingest_queue_depth",
    help: "Ingestion jobs waiting to run (created or waiting for a retry)",
    registers: [registry],
    async collect() {
      // Before start() or while the primary is away the depth is unknown: leave the last value.
      const size = await boss.getQueueSize(INGEST_QUEUE).catch(() => undefined);
      if (size !== undefined) this.set(size);
    },
  });
  // Jobs are inserted in the caller's transaction: a document and its job commit together.
  const inTransaction = (tx: Kysely<Database>) => ({
    executeSql: async (text: string, values: unknown[]) => tx.executeQuery(CompiledQuery.raw(text, values)),
  });
  async function enqueue(tx: Kysely<Database>, jobs: readonly IngestJobData[]): Promise<void> {
    if (jobs.length === 0) return;
    const priority = writePriority(jobs.length);
    await boss.insert(
      jobs.map((data) => ({ name: INGEST_QUEUE, data, priority, expireInSeconds: options.jobExpireSeconds })),
      { db: inTransaction(tx) },
    );
  }
  /** Deletes leave postings behind (see deleteChunksOf): compaction drops them once they are many. */
  async function requestCompaction(tx: Kysely<Database>, job: CompactionJob): Promise<void> {
    await boss.send(COMPACTION_QUEUE, job, { singletonKey: job.collectionId, db: inTransaction(tx) });
  }
  /** An uploaded import, queued with its status in the same transaction. */
  async function startImport(tx: Kysely<Database>, job: ImportJob): Promise<void> {
    await boss.send(IMPORT_QUEUE, job, { db: inTransaction(tx), expireInSeconds: options.jobExpireSeconds });
  }
  return { boss, enqueue, requestCompaction, startImport };
}

/**
 * The ingestion priority of a write of `documents` documents (pg-boss runs higher first, then in
 * order): one document 0, two -1, a thousand -10. A person's single upload runs ahead of a bulk
 * upload queued before it, of whatever tenant, instead of waiting for all of it; bulk uploads keep
 * their order among themselves, and every job still runs.
 */
export function writePriority(documents: number): number {
  // `|| 0`: one document is 0, not -0.
  return -Math.ceil(Math.log2(Math.max(1, documents))) || 0;
}
