import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../errors.ts";

/** An oversized body is read and dropped up to this much, so the client sees the 413… */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
/** …within this long; past either, the connection is closed. */
const DRAIN_MAX_MS = 10_000;

/**
 * Refuses a body larger than `maxBytes` with a 413 naming `setting`. A client that declared such a
 * body sends all of it before it reads an answer (most do, unless they ask for 100-continue), and
 * closing the connection under it makes it see a reset instead of the 413: the rest of the body is
 * read and dropped first, within bounds.
 */
export function limitBodySize(maxBytes: number, setting: string): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: async (c) => {
      const declared = Number(c.req.header("Content-Length") ?? Number.NaN);
      const body = c.req.raw.body;
      if (body && !body.locked && declared <= DRAIN_MAX_BYTES) await drain(body);
      throw new AppError("payload_too_large", `the request body is larger than ${maxBytes} bytes (${setting})`);
    },
  });
}

async function drain(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  const timer = setTimeout(() => void reader.cancel().catch(() => undefined), DRAIN_MAX_MS);
  try {
    while (!(await reader.read()).done);
  } catch {
    // The client went away or the time ran out: nothing more to do.
  } finally {
    clearTimeout(timer);
  }
}
