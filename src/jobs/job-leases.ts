import type { Router } from "../db/router.ts";

/**
 * Renews the leases of jobs a worker is running. pg-boss 10 has no heartbeat: its maintenance
 * expires an active job once `started_on + expire_in` has passed and runs it again. Moving
 * `started_on` forward is the heartbeat (pg-boss reads the column only for that and, when it fetches
 * a job again, to count a retry).
 */
async function renewJobLeases(router: Router, jobIds: readonly string[], queue: string): Promise<void> {
  await router
    .primarySqlExecutor()
    .executeSql(
      "UPDATE pgboss.job SET started_on = now() WHERE name = $1 AND id = any($2::uuid[]) AND state = 'active'",
      [queue, jobIds],
    );
}

/** Runs `work` while renewing these jobs' leases three times per lease, so only a dead worker's jobs expire. */
export async function withRenewedLeases<T>(
  deps: { router: Router; logger: { warn(fields: object, message: string): void } },
  lease: { queue: string; jobIds: readonly string[]; seconds: number },
  work: () => Promise<T>,
): Promise<T> {
  const renew = setInterval(
    () =>
      void renewJobLeases(deps.router, lease.jobIds, lease.queue).catch((error: unknown) =>
        deps.logger.warn({ err: error, jobIds: lease.jobIds }, "renewing job leases failed"),
      ),
    (lease.seconds * 1000) / 3,
  );
  try {
    return await work();
  } finally {
    clearInterval(renew);
  }
}
