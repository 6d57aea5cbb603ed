import { Hono } from "hono";
import type { NodeMonitor } from "../db/node-monitor.ts";
import type { AppEnv } from "./context.ts";

/** Liveness (the process answers) and readiness (every database node is reachable, with lag). */
export function healthRoutes(monitor: NodeMonitor): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .get("/healthz", (c) => c.json({ status: "ok" }))
    .get("/readyz", async (c) => {
      // Probe now rather than trusting the last loop iteration: a load balancer asks rarely.
      await monitor.probeAll(true);
      const nodes = monitor.snapshot().map((h) => ({
        name: h.name,
        role: h.role,
        state: h.state,
        lag_ms: h.lagMs === null || Number.isFinite(h.lagMs) ? h.lagMs : null,
        error: h.lastError,
      }));
      const ready = nodes.every((n) => n.state !== "down");
      return c.json({ ready, nodes }, ready ? 200 : 503);
    });
}
