import { SpanStatusCode } from "@opentelemetry/api";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { SpanKind, type Tracing } from "../tracing.ts";
import type { AppEnv } from "./context.ts";

/**
 * A server span per request, joining the caller's trace when it sends `traceparent`. Everything the
 * request does (routing, statements, inference) nests under it. A streamed answer's span ends with
 * its last byte, or when the client goes away, not when its headers are sent.
 */
export function traceRequests(tracing: Tracing): MiddlewareHandler<AppEnv> {
  return async function traceRequest(c, next) {
    if (!tracing.enabled) return next();
    const parent = tracing.incoming(Object.fromEntries(c.req.raw.headers));
    const span = tracing.start(
      c.req.method,
      { "http.request.method": c.req.method, "url.path": c.req.path, "pgrag.request_id": c.get("requestId") },
      SpanKind.SERVER,
      parent,
    );
    let streaming = false;
    try {
      await tracing.within(span, parent, next);
      const route = routePath(c, -1);
      span.updateName(`${c.req.method} ${route}`);
      span.setAttributes({ "http.route": route, "http.response.status_code": c.res.status });
      if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      const body = c.res.body;
      if (body && c.res.headers.get("content-type")?.startsWith("text/event-stream")) {
        c.res = new Response(
          endingWith(body, () => span.end()),
          c.res,
        );
        streaming = true;
      }
    } finally {
      if (!streaming) span.end();
    }
  };
}

/** The same bytes, calling `done` once when they end, fail or are cancelled. */
function endingWith(body: ReadableStream<Uint8Array>, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      done();
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done: finished } = await reader.read();
        if (finished) {
          end();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        end();
        controller.error(error);
      }
    },
    async cancel(reason) {
      end();
      await reader.cancel(reason);
    },
  });
}
