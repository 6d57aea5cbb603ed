/**
 * Whether an error means "the node (or the pooler in front of it) went away", as opposed to a
 * problem with the query. Only these make a read move to another node or open a node's breaker.
 */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTCONN"]);
// 08xxx: connection exceptions (PgBouncer reports its own failures as 08P01); 57P01–57P03: the
// server is shutting down or starting; 53300: too many connections.
const SQLSTATE_PATTERN = /^(08...|57P0[123]|53300)$/;
const MESSAGE_PATTERN =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|server conn crashed|query_wait_timeout/i;

export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || SQLSTATE_PATTERN.test(code))) return true;
  if (MESSAGE_PATTERN.test(error.message)) return true;
  return error.cause !== undefined && isConnectionError(error.cause);
}

/**
 * A write that reached a node in recovery (25006, read-only transaction): during a switch the
 * primary's entry can briefly lead to a standby. Nothing was written, so the write may simply be retried.
 */
export function isReadOnlyNodeError(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === "25006";
}

/**
 * A one-snapshot (REPEATABLE READ) transaction met a row changed since its snapshot (40001):
 * nothing it did was kept, and it may be run again from the start.
 */
export function isSerializationFailure(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === "40001";
}
