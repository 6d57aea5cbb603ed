import type pg from "pg";

/**
 * PostgreSQL's warning when a COMMIT stops waiting for its synchronous standby (the statement was
 * cancelled, or the server is shutting down): the transaction is committed on the primary, but no
 * standby confirmed it, so a failover may lose it. The COMMIT itself reports success.
 */
const SYNC_WAIT_CANCELLED = /canceling (the )?wait for synchronous replication/i;

/** A statement that returned after PostgreSQL gave up waiting for the synchronous standby. */
export class UnreplicatedCommitError extends Error {
  override readonly name = "UnreplicatedCommitError";
  constructor(notice: string) {
    super(`the commit was not confirmed by the synchronous standby: ${notice}`);
  }
}

/**
 * Makes a pooled client's promise queries fail with UnreplicatedCommitError when PostgreSQL warned
 * that it stopped waiting for the synchronous standby during them. Notices arrive before the
 * statement completes, so the warning is always seen before the query's promise settles.
 */
export function refuseUnreplicatedCommits(client: pg.PoolClient): void {
  let warning: string | null = null;
  client.on("notice", (notice) => {
    if (SYNC_WAIT_CANCELLED.test(notice.message ?? "")) warning = notice.message ?? "";
  });
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    warning = null;
    const result = query(...args);
    if (!(result instanceof Promise)) return result; // callback and submittable forms: not used by Kysely
    return result.then((value: unknown) => {
      if (warning !== null) throw new UnreplicatedCommitError(warning);
      return value;
    });
  }) as typeof client.query;
}
