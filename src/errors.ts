/**
 * The one error vocabulary. Capabilities throw these; `src/api/error-handler.ts` maps each code to an
 * HTTP status, and anything else becomes a logged, generic 500.
 */
export type ErrorCode =
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
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
