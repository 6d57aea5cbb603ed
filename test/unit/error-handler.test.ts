import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../src/api/context.ts";
import { handleError, handleNotFound } from "../../src/api/error-handler.ts";
import { AppError, InvalidRequestError, NotFoundError, UnavailableError } from "../../src/errors.ts";

// Route-level, no port and no database: fake routes that throw, through the real error mapping.
const logged: string[] = [];
const app = new Hono<AppEnv>()
  .use(requestId())
  .use(async (c, next) => {
    c.set("logger", pino({ level: "error" }, { write: (line: string) => void logged.push(line) }));
    await next();
  })
  .get("/invalid", () => {
    throw new InvalidRequestError("k must be at most 100", { details: { field: "k" } });
  })
  .get("/missing", () => {
    throw new NotFoundError('no collection "docs"');
  })
  .get("/busy", () => {
    throw new UnavailableError("no database node could serve the read", { retryAfterSeconds: 1 });
  })
  .get("/too-complex", () => {
    throw new AppError("unprocessable", "chunking the document took longer than 100 ms");
  })
  .get("/hono", () => {
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  })
  .get("/postgres", () => {
    throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: "22021" });
  })
  .get("/deadlock", () => {
    throw Object.assign(new Error("deadlock detected"), { code: "40P01" });
  })
  .get("/bug", () => {
    throw new Error("secret internal detail at /srv/app.ts:12");
  })
  .onError(handleError)
  .notFound(handleNotFound);

async function call(path: string) {
  const response = await app.request(path);
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as { error: Record<string, unknown> },
  };
}

describe("errors to HTTP", () => {
  it("maps each error code to its status, in one body shape with the request id", async () => {
    const expected: [string, number, string][] = [
      ["/invalid", 400, "invalid_request"],
      ["/missing", 404, "not_found"],
      ["/busy", 503, "unavailable"],
      ["/too-complex", 422, "unprocessable"],
      ["/hono", 400, "invalid_request"],
      ["/postgres", 400, "invalid_request"],
      ["/deadlock", 409, "conflict"],
      ["/bug", 500, "internal"],
      ["/nowhere", 404, "not_found"],
    ];
    for (const [path, status, code] of expected) {
      const { status: got, headers, body } = await call(path);
      expect([path, got, body.error.code]).toEqual([path, status, code]);
      expect(body.error.request_id).toBe(headers.get("X-Request-Id"));
    }
  });

  it("keeps details and Retry-After, and says what a person can act on", async () => {
    expect((await call("/invalid")).body.error).toMatchObject({
      message: "k must be at most 100",
      details: { field: "k" },
    });
    expect((await call("/busy")).headers.get("Retry-After")).toBe("1");
    expect((await call("/postgres")).body.error.message).toMatch(
      /a value in the request cannot be stored or searched: invalid byte/,
    );
    expect((await call("/nowhere")).body.error.message).toBe("no route for GET /nowhere");
    const deadlock = await call("/deadlock");
    expect(deadlock.headers.get("Retry-After")).toBe("1");
    expect(deadlock.body.error.message).toMatch(/rolled back whole; nothing was written: send it again/);
  });

  it("never shows an unexpected error's message or stack, and logs it instead", async () => {
    const { body } = await call("/bug");
    expect(JSON.stringify(body)).not.toMatch(/secret|srv|stack/);
    expect(body.error.message).toMatch(/the request id identifies it in the server logs/);
    expect(logged.join("")).toContain("secret internal detail");
  });
});
