import { describe, expect, it, onTestFinished, vi } from "vitest";
import { NodeMonitor } from "../../../src/db/node-monitor.ts";
import { startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { cluster, restoreTopology } from "../../helpers/cluster.ts";

interface Readiness {
  ready: boolean;
  nodes: { name: string; role: string; state: string; lag_ms: number | null; error: string | null }[];
}

describe("health endpoints", () => {
  it("/readyz probes the nodes at most once a second, however many ask at once", async () => {
    const app = await startTestApp();
    // Spied after start-up, whose own probe is not the route's.
    const probes = vi.spyOn(NodeMonitor.prototype, "probeAll");
    onTestFinished(() => probes.mockRestore());
    const burst = await Promise.all(Array.from({ length: 50 }, () => app.http.request("/readyz")));
    expect(burst.every((r) => r.status === 200)).toBe(true);
    expect((await app.http.request("/readyz")).status).toBe(200);
    // Forced probes only: the monitor's own loop probes on its interval too, unforced.
    expect(probes.mock.calls.filter(([force]) => force === true)).toHaveLength(1);
  });

  it("/healthz answers while the process is up", async () => {
    const app = await startTestApp();
    const response = await app.http.request("/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("/readyz reports every node with its lag, and turns not-ready while a replica is stopped", async () => {
    const app = await startTestApp();
    const before = await app.http.request("/readyz");
    expect(before.status).toBe(200);
    const body = (await before.json()) as Readiness;
    expect(body.nodes.map((n) => [n.name, n.role, n.state])).toEqual([
      ["primary", "primary", "up"],
      ["replica1", "replica", "up"],
      ["replica2", "replica", "up"],
    ]);
    expect(body.nodes.filter((n) => n.role === "replica").every((n) => n.lag_ms !== null && n.lag_ms >= 0)).toBe(true);

    // Injected: replica2 stopped (fast shutdown). Asserted: 503 naming replica2 as down, once the
    // last probe (at most a second old) has been replaced.
    await cluster("stop-node", "replica2");
    try {
      const during = await waitFor("not ready", async () => {
        const response = await app.http.request("/readyz");
        return response.status === 503 ? response : undefined;
      });
      const duringBody = (await during.json()) as Readiness;
      expect(duringBody.ready).toBe(false);
      expect(duringBody.nodes.find((n) => n.name === "replica2")?.state).toBe("down");
    } finally {
      await restoreTopology();
    }
    await waitFor("readiness after restart", async () => (await app.http.request("/readyz")).status === 200);
  });

  it("answers unknown routes with the JSON error format and a request id", async () => {
    const app = await startTestApp();
    const response = await app.http.request("/v1/nothing-here");
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: { code: string; message: string; request_id: string } };
    expect(body.error.code).toBe("not_found");
    expect(body.error.message).toContain("/v1/nothing-here");
    expect(response.headers.get("X-Request-Id")).toBe(body.error.request_id);
  });
});
