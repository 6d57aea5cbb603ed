import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError, type ErrorCode, errorCodeOf, httpStatusOf } from "../errors.ts";
import type { AppEnv } from "./context.ts";
import { IdempotentReplay } from "../db/idempotency.ts";
import { replayAnswer } from "./idempotency.middleware.ts";

/** The HTTP status an error is answered with (for usage events recorded before the handler runs). */
export function statusOf(error: unknown): number {
  return error instanceof HTTPException ? error.status : httpStatusOf(error);
}

export interface ErrorBody {
  error: { code: ErrorCode | "internal"; message: string; details?: unknown; request_id?: string };
}

/** The one mapping from errors to responses: `{ "error": { "code", "message" } }`, never a stack. */
export function handleError(error: Error, c: Context<AppEnv>): Response {
  const requestId = c.get("requestId");
  if (error instanceof IdempotentReplay) return replayAnswer(c, error, (refusal) => handleError(refusal, c));
  if (error instanceof AppError) {
    if (error.retryAfterSeconds !== undefined) c.header("Retry-After", String(error.retryAfterSeconds));
    const body: ErrorBody = { error: { code: error.code, message: error.message, request_id: requestId } };
    if (error.details !== undefined) body.error.details = error.details;
    return c.json(body, httpStatusOf(error) as ContentfulStatusCode);
  }
  if (error instanceof HTTPException && error.status < 500) {
    // Hono's own 4xx (e.g. an unparsable body): keep its message, in our format.
    const code: ErrorCode = error.status === 413 ? "payload_too_large" : "invalid_request";
    return c.json<ErrorBody>(
      { error: { code, message: error.message, request_id: requestId } },
      error.status as ContentfulStatusCode,
    );
  }
  const code = errorCodeOf(error);
  if (code === "invalid_request") {
    // PostgreSQL refused a value the schemas let through (a NUL character in JSON, say): the
    // request is at fault, and its author can act on the database's own words.
    return c.json<ErrorBody>(
      {
        error: {
          code: "invalid_request",
          message: `a value in the request cannot be stored or searched: ${error.message}`,
          request_id: requestId,
        },
      },
      400,
    );
  }
  if (code === "conflict") {
    // A deadlock or serialization failure with a concurrent request: PostgreSQL rolled this one
    // back whole, so nothing of it was written and sending it again is safe.
    c.header("Retry-After", "1");
    return c.json<ErrorBody>(
      {
        error: {
          code: "conflict",
          message:
            "the request collided with a concurrent one and was rolled back whole; nothing was written: send it again",
          request_id: requestId,
        },
      },
      409,
    );
  }
  c.get("logger").error({ err: error }, "unhandled error");
  return c.json<ErrorBody>(
    {
      error: {
        code: "internal",
        message: "internal error; the request id identifies it in the server logs",
        request_id: requestId,
      },
    },
    500,
  );
}

export function handleNotFound(c: Context<AppEnv>): Response {
  return c.json<ErrorBody>(
    {
      error: {
        code: "not_found",
        message: `no route for ${c.req.method} ${c.req.path}`,
        request_id: c.get("requestId"),
      },
    },
    404,
  );
}
