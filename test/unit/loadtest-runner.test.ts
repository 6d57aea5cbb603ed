import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { runScenarios } from "../../loadtest/runner.ts";
import { classifyOwnRead } from "../../loadtest/scenarios.js";

let searches = 0;

/** A stand-in API whose document reads answer as `read` says; every write answers version 2. */
function fakeApi(read: (id: string) => { status: number; body?: unknown }): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url === "/v1/search") searches++;
    const document = /^\/v1\/collections\/[^/]+\/documents\/([^/]+)$/.exec(request.url ?? "");
    request.resume();
    request.on("end", () => {
      const answer =
        document && request.method === "GET" ? read(document[1] ?? "") : { status: 202, body: { version: 2 } };
      response.writeHead(answer.status, { "content-type": "application/json", "x-consistency-token": "0/1000" });
      response.end(JSON.stringify(answer.body ?? { error: { message: "no" } }));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let server: Server | undefined;
afterEach(() => server?.close());

async function mixedRound(read: (id: string) => { status: number; body?: unknown }, warmup?: string) {
  server = await fakeApi(read);
  const { port } = server.address() as AddressInfo;
  const summary = await runScenarios({
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey: "pgr_test",
    scenarios: ["mixed"],
    rateScale: 0.5,
    duration: "1s",
    ...(warmup ? { warmup } : {}),
  });
  const count = (metric: string) => summary.metrics[metric]?.count ?? Number.NaN;
  return {
    violations: count("ryw_violations"),
    readErrors: count("ryw_read_errors"),
    consistent: count("ryw_consistent"),
    ok: summary.ok,
    measuredSearches: summary.metrics["http_reqs{endpoint:search}"]?.count ?? 0,
  };
}

describe("the load runner's read-your-writes counter", () => {
  it("counts a read that does not see the write (404, or an older version) as a violation", async () => {
    const stale = await mixedRound(() => ({ status: 200, body: { version: 1 } }));
    expect(stale.violations).toBeGreaterThan(0);
    expect(stale.readErrors).toBe(0);
    expect(stale.ok).toBe(false);
    const missing = await mixedRound(() => ({ status: 404 }));
    expect(missing.violations).toBeGreaterThan(0);
  });

  it("counts failed reads (503, 429) apart, never as violations", async () => {
    const overloaded = await mixedRound(() => ({ status: 503 }));
    expect(overloaded.violations).toBe(0);
    expect(overloaded.readErrors).toBeGreaterThan(0);
    const limited = await mixedRound(() => ({ status: 429 }));
    expect(limited.violations).toBe(0);
    expect(limited.readErrors).toBeGreaterThan(0);
  });

  it("counts a read of the written version as consistent", async () => {
    const fresh = await mixedRound(() => ({ status: 200, body: { version: 2 } }));
    expect(fresh).toMatchObject({ violations: 0, readErrors: 0 });
    expect(fresh.consistent).toBeGreaterThan(0);
  });

  it("warms up with unmeasured searches before the measured scenarios", async () => {
    searches = 0;
    const warmed = await mixedRound(() => ({ status: 200, body: { version: 2 } }), "1s");
    expect(searches).toBeGreaterThan(0);
    expect(warmed.measuredSearches).toBe(0);
    expect(warmed.consistent).toBeGreaterThan(0);
  });

  it("classifies each outcome, including no response and a failed write", () => {
    expect(classifyOwnRead({ status: 202, version: 3 }, { status: 200, version: 3 })).toBe("consistent");
    expect(classifyOwnRead({ status: 202, version: 3 }, { status: 200, version: 4 })).toBe("consistent");
    expect(classifyOwnRead({ status: 202, version: 3 }, { status: 200, version: 2 })).toBe("violation");
    expect(classifyOwnRead({ status: 202, version: 3 }, { status: 200 })).toBe("violation");
    expect(classifyOwnRead({ status: 202 }, { status: 404 })).toBe("violation");
    expect(classifyOwnRead({ status: 202 }, null)).toBe("read-error");
    expect(classifyOwnRead({ status: 202 }, { status: 500 })).toBe("read-error");
    expect(classifyOwnRead({ status: 503 }, { status: 404 })).toBe("write-failed");
  });
});
