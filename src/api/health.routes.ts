import { Hono } from "hono";
import type { NodeMonitor } from "../db/node-monitor.ts";
import type { AppEnv } from "./context.ts";
import { documented } from "./route-docs.ts";

/**
 * A readiness probe fresher than this is reused: /readyz needs no key, so without the bound anyone
 * could make every node be probed, through the request pools, as often as they like.
 */
const READINESS_MAX_AGE_MS = 1_000;

/** Liveness (the process answers) and readiness (every database node is reachable, with lag). */
export function healthRoutes(monitor: NodeMonitor): Hono<AppEnv> {
  let probing: Promise<void> | undefined;
  let probedAt = Number.NEGATIVE_INFINITY;
  // Probe now rather than trusting the monitor's loop (a load balancer asks rarely), but at most once
  // a second, and concurrent callers share one probe.
  const freshProbe = () => {
    if (performance.now() - probedAt < READINESS_MAX_AGE_MS) return Promise.resolve();
    probing ??= monitor.probeAll(true).finally(() => {
      probedAt = performance.now();
      probing = undefined;
    });
    return probing;
  };
  return new Hono<AppEnv>()
    .get("/healthz", documented("Liveness", { public: true, responses: { 200: "The process is up" } }), (c) =>
      c.json({ status: "ok" }),
    )
    .get(
      "/readyz",
      documented("Readiness: every database node reachable, with replica lag", {
        public: true,
        responses: { 200: "Ready", 503: "A node is down" },
      }),
      async (c) => {
        await freshProbe();
        const nodes = monitor.snapshot().map((h) => ({
          name: h.name,
          role: h.role,
          state: h.state,
          timeline: h.timeline,
          lag_ms: h.lagMs === null || Number.isFinite(h.lagMs) ? h.lagMs : null,
          error: h.lastError,
        }));
        const ready = nodes.every((n) => n.state !== "down");
        return c.json({ ready, nodes }, ready ? 200 : 503);
      },
    );
}
