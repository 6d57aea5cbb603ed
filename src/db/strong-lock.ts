import { setTimeout as delay } from "node:timers/promises";
import { type Kysely, sql } from "kysely";
import type { Database } from "./database.ts";

/** How long a statement waits for a strong lock before it lets the queue behind it through. */
const LOCK_WAIT_MS = 100;
/** Attempts before giving up (the caller's job retries later): about 20 s of trying. */
const ATTEMPTS = 60;

/**
 * Runs `statement`, which takes a strong lock on a table other tenants use (DDL on a shared
 * partition), without making them wait behind it: a lock request that waits queues every later
 * request for that table behind it, so it may wait only LOCK_WAIT_MS, then it is undone (to a
 * savepoint, keeping the caller's transaction) and tried again after a jittered pause in which the
 * queue drains. Other errors, and the last timeout, go to the caller.
 */
export async function withShortLockWait<T>(tx: Kysely<Database>, statement: () => Promise<T>): Promise<T> {
  const { rows } = await sql<{ wait: string }>`SELECT current_setting('lock_timeout') AS wait`.execute(tx);
  const previous = rows[0]?.wait ?? "0";
  for (let attempt = 1; ; attempt++) {
    await sql`SAVEPOINT strong_lock`.execute(tx);
    await sql`SELECT set_config('lock_timeout', ${`${LOCK_WAIT_MS}ms`}, true)`.execute(tx);
    try {
      const result = await statement();
      await sql`SELECT set_config('lock_timeout', ${previous}, true)`.execute(tx);
      await sql`RELEASE SAVEPOINT strong_lock`.execute(tx);
      return result;
    } catch (error) {
      // Rolling back to the savepoint also undoes the lock_timeout set after it.
      await sql`ROLLBACK TO SAVEPOINT strong_lock`.execute(tx);
      if (!isLockTimeout(error) || attempt >= ATTEMPTS) throw error;
      await delay(LOCK_WAIT_MS + Math.random() * 3 * LOCK_WAIT_MS);
    }
  }
}

/** SQLSTATE 55P03, lock_not_available: what lock_timeout raises. */
function isLockTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "55P03";
}
