import { Hono } from "hono";
import { prometheus } from "@hono/prometheus";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { Registry } from "prom-client";
import type { NodeMonitor } from "../db/node-monitor.ts";
import type { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";
import type { Tracing } from "../tracing.ts";
import { limitBodySize } from "./body-limit.ts";
import type { AppEnv } from "./context.ts";
import { handleError, handleNotFound } from "./error-handler.ts";
import { healthRoutes } from "./health.routes.ts";
import { idempotentWrites } from "./idempotency.middleware.ts";
import { traceRequests } from "./trace-requests.ts";
import { limitJsonDepth } from "./validation.ts";
import { documented } from "./route-docs.ts";

export interface HttpDependencies {
  readonly logger: Logger;
  readonly monitor: NodeMonitor;
  /** Records the answers of writes that carry an idempotency key. */
  readonly router: Router;
  readonly registry: Registry;
  readonly tracing: Tracing;
  /** The capability routes, mounted after health and metrics. */
  readonly routes: readonly Hono<AppEnv>[];
  /** Every request body is bounded by `maxBytes`, except on routes matching `ownLimit`, which set a larger one. */
  readonly bodyLimit: { readonly maxBytes: number; readonly ownLimit: RegExp };
}

export function createHttpApp(deps: HttpDependencies): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(requestId({ limitLength: 128 }));
  // nosniff, no framing, no referrer, … on every response; each page adds its own CSP.
  app.use(secureHeaders({ xFrameOptions: "DENY", referrerPolicy: "no-referrer", crossOriginEmbedderPolicy: false }));
  const { registerMetrics } = prometheus({ registry: deps.registry, prefix: "pgrag_" });
  app.use(registerMetrics);
  // Before the request's log line, which then carries the trace's ids.
  app.use(traceRequests(deps.tracing));
  app.use(async function logRequest(c, next) {
    const logger = deps.logger.child({ requestId: c.get("requestId") });
    c.set("logger", logger);
    const started = performance.now();
    await next();
    const fields = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    };
    if (c.res.status >= 500) logger.error(fields, "request failed");
    else logger.info(fields, "request");
  });
  const limitBody = limitBodySize(deps.bodyLimit.maxBytes, "PGRAG_MAX_JSON_BODY_BYTES");
  const limitDepth = limitJsonDepth();
  // Before authentication: an oversized body is refused without reading it, whoever sends it; a body
  // within the limit and nested too deep, before anything parses it. Routes with their own limit
  // check depth after it.
  app.use(async function limitRequestBody(c, next) {
    if (deps.bodyLimit.ownLimit.test(c.req.path)) return next();
    return limitBody(c, async () => {
      await limitDepth(c, next);
    });
  });
  // After the body limits: a JSON body is read whole for the request's fingerprint.
  app.use(idempotentWrites(deps.router, deps.bodyLimit.ownLimit));
  app.onError(handleError);
  app.notFound(handleNotFound);

  app.route("/", healthRoutes(deps.monitor));
  app.get(
    "/metrics",
    documented("Prometheus metrics", { public: true, responses: { 200: "Prometheus text format" } }),
    async (c) => {
      c.header("Content-Type", deps.registry.contentType);
      return c.body(await deps.registry.metrics());
    },
  );
  for (const routes of deps.routes) app.route("/", routes);
  return app;
}
