/**
 * The one error vocabulary. Capabilities throw these; each code has its HTTP status (httpStatusOf),
 * and `src/api/error-handler.ts` answers anything else with a logged, generic 500.
 */
export type ErrorCode =
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  /** a body of a type pgrag does not read */
  | "unsupported_media_type"
  | "unprocessable"
  | "rate_limited"
  /** a per-tenant quota is reached: free something or ask for a larger quota */
  | "quota_exceeded"
  | "unavailable"
  /** a batch request stopped so that an interactive one could use its inference slot; run it again */
  | "preempted"
  | "bad_gateway"
  | "timeout";

export class AppError extends Error {
  override readonly name: string = "AppError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions & { details?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options);
    this.details = options?.details;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  readonly details: unknown;
  readonly retryAfterSeconds: number | undefined;
}

export class InvalidRequestError extends AppError {
  override readonly name = "InvalidRequestError";
  constructor(message: string, options?: ErrorOptions & { details?: unknown }) {
    super("invalid_request", message, options);
  }
}

export class NotFoundError extends AppError {
  override readonly name = "NotFoundError";
  constructor(message: string) {
    super("not_found", message);
  }
}

/** A database node or upstream service that is needed is not reachable now. */
export class UnavailableError extends AppError {
  override readonly name = "UnavailableError";
  constructor(message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super("unavailable", message, options);
  }
}

/** Describes zod issues as "field: problem" a person can act on. */
export function describeIssues(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): {
  message: string;
  details: { path: string; message: string }[];
} {
  const details = error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
  const shown = details.slice(0, 5).map((d) => `${d.path}: ${d.message}`);
  return {
    message: `invalid request: ${shown.join("; ")}${details.length > 5 ? ` (+${details.length - 5} more)` : ""}`,
    details,
  };
}

/** The HTTP status of each code: the API answers with it, and batch lines and usage events record it. */
const STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  quota_exceeded: 429,
  unavailable: 503,
  preempted: 503,
  bad_gateway: 502,
  timeout: 504,
};

/** Every code the API answers with (`internal`: anything unforeseen, 500). */
export const ERROR_CODES = [...Object.keys(STATUS_BY_CODE), "internal"] as const;

/**
 * The code an error is reported with: ours, `invalid_request` for a value PostgreSQL refused,
 * `conflict` for a transaction it rolled back (sending it again is safe), else `internal`.
 */
export function errorCodeOf(error: unknown): ErrorCode | "internal" {
  if (error instanceof AppError) return error.code;
  if (isDataException(error)) return "invalid_request";
  return isTransactionRollback(error) ? "conflict" : "internal";
}

/**
 * The HTTP status of an error: its code's for ours, 400 for a value PostgreSQL refused, 409 for a
 * transaction it rolled back (sending it again is safe), else 500.
 */
export function httpStatusOf(error: unknown): number {
  if (error instanceof AppError) return STATUS_BY_CODE[error.code];
  if (isDataException(error)) return 400;
  return isTransactionRollback(error) ? 409 : 500;
}

/** SQLSTATE class 22, data exception: invalid characters, out-of-range numbers, bad casts of input. */
export function isDataException(error: unknown): boolean {
  return sqlStateClass(error) === "22";
}

/** SQLSTATE class 40, transaction rollback: a deadlock or serialization failure. */
export function isTransactionRollback(error: unknown): boolean {
  return sqlStateClass(error) === "40";
}

function sqlStateClass(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.length === 5 ? code.slice(0, 2) : undefined;
}
