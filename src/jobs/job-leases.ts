import type { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";

export interface LeaseRenewal {
  /** The lease's length: it is renewed three times per lease, so only a dead worker's work expires. */
  readonly seconds: number;
  readonly renew: () => Promise<void>;
  /** Names the leases in the warning a failed renewal logs. */
  readonly what: string;
  readonly logger: Logger;
}

/** Renews leases until the returned function is called. A failed renewal is logged; the next one tries again. */
export function startLeaseRenewal(lease: LeaseRenewal): () => void {
  const timer = setInterval(
    () =>
      void lease.renew().catch((error: unknown) => lease.logger.warn({ err: error }, `renewing ${lease.what} failed`)),
    (lease.seconds * 1000) / 3,
  );
  return () => clearInterval(timer);
}

/**
 * Renews the leases of pg-boss jobs a worker is running. pg-boss 10 has no heartbeat: its maintenance
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

/** Runs `work` while renewing these jobs' leases. */
export async function withRenewedLeases<T>(
  deps: { router: Router; logger: Logger },
  lease: { queue: string; jobIds: readonly string[]; seconds: number },
  work: () => Promise<T>,
): Promise<T> {
  const stop = startLeaseRenewal({
    seconds: lease.seconds,
    renew: () => renewJobLeases(deps.router, lease.jobIds, lease.queue),
    what: `the leases of ${lease.queue} jobs ${lease.jobIds.slice(0, 3).join(", ")}${lease.jobIds.length > 3 ? "…" : ""}`,
    logger: deps.logger,
  });
  try {
    return await work();
  } finally {
    stop();
  }
}
