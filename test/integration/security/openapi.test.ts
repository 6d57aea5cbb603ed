import { describe, expect, it } from "vitest";
import { startTestApp } from "../../helpers/app.ts";

describe("OpenAPI", () => {
  it("documents every route the app serves, with request schemas from the validators, and serves a docs page", async () => {
    const app = await startTestApp();
    const response = await app.http.request("/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: object } }> } }>> };
    expect(document.openapi).toBe("3.1.0");
    const served = app.http.routes
      .filter((r) => r.method !== "ALL" && (r.path.startsWith("/v1") || ["/", "/healthz", "/readyz", "/metrics"].includes(r.path)))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const documented = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
    expect([...new Set(served)].sort()).toEqual(documented.sort());
    expect(document.paths["/v1/search"]?.post?.requestBody?.content["application/json"]?.schema.properties).toHaveProperty("query");
    const docs = await app.http.request("/docs");
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain("/openapi.json");
  });
});
