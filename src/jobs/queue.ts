import { CompiledQuery, type Kysely } from "kysely";
import PgBoss from "pg-boss";
import { Gauge, type Registry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";

export interface QueueOptions {
  /** A job whose worker died is failed, and so retried, after this long. */
  readonly jobExpireSeconds: number;
  /** How often expired jobs are looked for (pg-boss maintenance). */
  readonly maintenanceIntervalSeconds: number;
}

/**
 * pg-boss over the router's primary executor. Its schema and queues are created by the migrations,
 * so the application role needs no DDL and start-up does not migrate. Each job type (`*.job.ts`)
 * names its queue and payload and sends through here; its handler is a PollLoop (poll-loop.ts).
 */
export class JobQueue {
  readonly boss: PgBoss;
  readonly jobExpireSeconds: number;

  constructor(router: Router, options: QueueOptions, registry: Registry, logger: Logger) {
    this.jobExpireSeconds = options.jobExpireSeconds;
    const boss = new PgBoss({
      db: router.primarySqlExecutor(),
      schema: "pgboss",
      migrate: false,
      schedule: false,
      supervise: true,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds,
    });
    this.boss = boss;
    // pg-boss reports background errors (a maintenance run during a failover) as events; it goes on
    // by itself, so they are warnings, not crashes.
    boss.on("error", (error) => logger.warn({ err: error }, "job queue background error; pg-boss goes on"));
    new Gauge({
      name: "pgrag_job_queue_depth",
      help: "Jobs waiting to run (created or waiting for a retry), by queue",
      labelNames: ["queue"],
      registers: [registry],
      async collect() {
        // Before start() or while the primary is away the depths are unknown: leave the last values.
        const queues = await boss.getQueues().catch(() => []);
        for (const { name } of queues) {
          const size = await boss.getQueueSize(name).catch(() => undefined);
          if (size !== undefined) this.set({ queue: name }, size);
        }
      },
    });
  }

  /** Inserts jobs in the caller's transaction: the rows they are about and the jobs commit together. */
  async insert(tx: Kysely<Database>, jobs: PgBoss.JobInsert[]): Promise<void> {
    if (jobs.length > 0) await this.boss.insert(jobs, { db: inTransaction(tx) });
  }

  /** Sends one job, in the caller's transaction when there is one. */
  async send(tx: Kysely<Database> | null, queue: string, data: object, options: PgBoss.SendOptions): Promise<void> {
    await this.boss.send(queue, data, tx ? { ...options, db: inTransaction(tx) } : options);
  }
}

function inTransaction(tx: Kysely<Database>): PgBoss.Db {
  return { executeSql: async (text: string, values: unknown[]) => tx.executeQuery(CompiledQuery.raw(text, values)) };
}
