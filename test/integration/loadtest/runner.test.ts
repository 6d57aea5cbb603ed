import { describe, expect, it } from "vitest";
import { formatSummary, runScenarios } from "../../../loadtest/runner.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";

describe("the Node load-test runner", () => {
  it("runs every scenario against the API for a few seconds: requests made, no errors, summary printed", async () => {
    const app = await startTestApp(
      {
        PGRAG_RATE_LIMIT_PER_SECOND: "100000",
        PGRAG_RATE_LIMIT_BURST: "100000",
        PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "100000",
      },
      { listen: true },
    );
    const { key } = await newTenantKey(app);
    const summary = await runScenarios({
      baseUrl: `http://127.0.0.1:${app.port()}`,
      apiKey: key,
      scenarios: ["search", "chat", "mixed", "ingest"],
      duration: "3s",
      rateScale: 0.5,
    });
    const text = formatSummary(summary);
    expect(summary.metrics.http_reqs?.count).toBeGreaterThan(50);
    expect(summary.metrics.http_req_failed?.fails).toBe(0);
    expect(summary.metrics.ryw_violations?.count).toBe(0);
    for (const endpoint of ["search", "chat", "mixed", "ingest"]) {
      expect(summary.metrics[`http_reqs{endpoint:${endpoint}}`]?.count, endpoint).toBeGreaterThan(0);
    }
    expect(text).toMatch(/http_req_duration\{endpoint:search\}\s+avg=/);
    expect(text).toMatch(/✓ ryw_violations count==0/);
  });
});
