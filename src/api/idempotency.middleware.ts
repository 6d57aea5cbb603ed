import { createHash } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import {
  type IdempotencyClaim,
  type IdempotentReplay,
  recordAnswer,
  releaseKey,
  withIdempotencyKey,
} from "../db/idempotency.ts";
import type { Router } from "../db/router.ts";
import { AppError, InvalidRequestError } from "../errors.ts";
import { CONSISTENCY_HEADER } from "./consistency.ts";
import type { AppEnv } from "./context.ts";

export const IDEMPOTENCY_HEADER = "Idempotency-Key";
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
/** Larger answers are not kept: a retry then learns that the write was applied, not what it returned. */
const MAX_STORED_ANSWER_BYTES = 256 * 1024;

/**
 * `Idempotency-Key` on a tenant's write (POST, PUT, PATCH, DELETE): a retry of the same request with
 * the same key gets the first answer again (`Idempotent-Replayed: true`) and writes nothing, however
 * the first attempt ended (a failover, a 503 whose outcome was unknown, a lost connection). The key
 * is claimed by the request's first write, in that write's transaction; see src/db/idempotency.ts.
 */
export function idempotentWrites(router: Router, ownBodyLimit: RegExp): MiddlewareHandler<AppEnv> {
  return async function idempotent(c, next) {
    const key = c.req.header(IDEMPOTENCY_HEADER);
    if (key === undefined || !WRITE_METHODS.has(c.req.method)) return next();
    if (!KEY_PATTERN.test(key)) {
      throw new InvalidRequestError(
        `${IDEMPOTENCY_HEADER} must be 1-255 visible ASCII characters (a UUID is a good key), got ${JSON.stringify(key.slice(0, 40))}`,
      );
    }
    if (ownBodyLimit.test(c.req.path)) {
      // Uploads stream and may be large: their bodies cannot be compared cheaply with an earlier one's.
      throw new InvalidRequestError(
        `${IDEMPOTENCY_HEADER} is not taken on uploads; a document written by its external id (PUT) is idempotent already`,
      );
    }
    const claim: IdempotencyClaim = { key, fingerprint: await fingerprint(c), claimedBy: null };
    await withIdempotencyKey(claim, next);
    const tenantId = claim.claimedBy;
    if (tenantId === null) return;
    try {
      if (c.res.status >= 500) {
        // A later step failed after the first write committed (the model, an import's next stage):
        // what stays applied is the request's own business; a retry starts it over.
        await router.write({ tenantId }, (tx) => releaseKey(tx, tenantId, key));
        return;
      }
      const answer = {
        status: c.res.status,
        body: await storableBody(c.res),
        token: c.res.headers.get(CONSISTENCY_HEADER),
      };
      await router.write({ tenantId }, (tx) => recordAnswer(tx, tenantId, key, answer));
    } catch (error) {
      // The write itself succeeded: its answer stands. A retry then learns it was applied (409).
      c.get("logger").warn({ err: error, key }, "could not record an idempotent request's answer");
    }
  };
}

/** Method, path and query, the credentials, and the body's bytes (bounded by the JSON body limit). */
async function fingerprint(c: Context<AppEnv>): Promise<string> {
  const hash = createHash("sha256");
  const url = new URL(c.req.url);
  for (const part of [
    c.req.method,
    url.pathname,
    url.search,
    c.req.header("Authorization"),
    c.req.header("X-End-User-Token"),
  ]) {
    hash.update(`${part ?? ""}\n`);
  }
  hash.update(`${c.req.header("Content-Type") ?? ""}\n`);
  // Hono keeps the bytes for the route to parse.
  hash.update(new Uint8Array(await c.req.arrayBuffer()));
  return hash.digest("hex");
}

async function storableBody(response: Response): Promise<unknown> {
  if (!/^application\/json\b/i.test(response.headers.get("Content-Type") ?? "")) return null;
  const text = await response.clone().text();
  return Buffer.byteLength(text) > MAX_STORED_ANSWER_BYTES ? null : (JSON.parse(text) as unknown);
}

/** The answer to a retry whose key an earlier, committed request claimed (called by the error handler). */
export function replayAnswer(
  c: Context<AppEnv>,
  replayed: IdempotentReplay,
  refuse: (error: AppError) => Response,
): Response {
  if (!replayed.sameRequest) {
    return refuse(
      new AppError(
        "unprocessable",
        `${IDEMPOTENCY_HEADER} "${replayed.key}" was already used for a different request; use a new key for a new request`,
      ),
    );
  }
  const { status, body, token } = replayed.answer;
  const headers: Record<string, string> = { "Idempotent-Replayed": "true" };
  if (token) headers[CONSISTENCY_HEADER] = token;
  if (status === null || body === null) {
    return c.json(
      {
        error: {
          code: "conflict",
          message:
            status === null
              ? `the request with ${IDEMPOTENCY_HEADER} "${replayed.key}" was applied, but its answer is not available: it is still being answered, or the server stopped before answering. Read the resource to see the effect; do not repeat the write with a new key`
              : `the request with ${IDEMPOTENCY_HEADER} "${replayed.key}" was applied (status ${status}); its answer was not kept (streamed or too large)`,
          request_id: c.get("requestId"),
        },
      },
      409,
      headers,
    );
  }
  return c.json(body, status as 200, headers);
}
