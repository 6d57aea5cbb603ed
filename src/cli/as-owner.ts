import type { Kysely } from "kysely";
import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import { adminTransaction, ownerTransaction } from "../tenancy/admin-transaction.ts";

type OwnerTransaction = <T>(work: (tx: Kysely<Database>) => Promise<T>) => Promise<T>;

/**
 * Runs administration (keys, quotas) as the schema owner. With a real database that is one direct connection
 * and nothing else (no monitor, queue or dev server); the embedded database is started, migrated
 * and stopped around it, as it has no other way in.
 */
export async function asOwner(run: (transaction: OwnerTransaction) => Promise<void>): Promise<void> {
  const config = loadConfig({
    ...process.env,
    PGRAG_WORKER_CONCURRENCY: "0",
    PGRAG_LOG_LEVEL: process.env.PGRAG_LOG_LEVEL ?? "warn",
  });
  if (!config.database.embedded) return run((work) => ownerTransaction(config, work));
  const app = createApp(config);
  await app.start({ listen: false });
  try {
    await run((work) => adminTransaction(app, work));
  } finally {
    await app.stop();
  }
}
