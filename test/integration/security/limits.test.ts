import { describe, expect, it } from "vitest";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";

describe("per-key rate limits", () => {
  it("answer 429 with Retry-After past the burst, per key, and the metrics show the requests", async () => {
    const app = await startTestApp({ PGRAG_RATE_LIMIT_PER_SECOND: "1", PGRAG_RATE_LIMIT_BURST: "3" });
    const first = await newTenantKey(app);
    const second = await newTenantKey(app);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await api(app, "GET", "/v1/collections", { key: first.key })).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await api<{ error: { code: string; message: string } }>(app, "GET", "/v1/collections", { key: first.key });
    expect(limited.body.error.code).toBe("rate_limited");
    expect(limited.body.error.message).toMatch(/rate limit of this API key exceeded \(1\/s, bursts of 3\)/);
    expect(Number(limited.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // Another key of the same app is not affected.
    expect((await api(app, "GET", "/v1/collections", { key: second.key })).status).toBe(200);

    const metrics = await (await app.http.request("/metrics")).text();
    expect(metrics).toMatch(/pgrag_http_request_duration_seconds_count\{[^}]*route="\/v1\/collections"[^}]*\} \d+/);
    expect(metrics).toMatch(/pgrag_db_node_state\{node="replica1",role="replica"\} 2/);
    expect(metrics).toMatch(/pgrag_inference_admission\{state="active"\} 0/);
  });
});
