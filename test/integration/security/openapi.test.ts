import { describe, expect, it } from "vitest";
import { startTestApp } from "../../helpers/app.ts";

describe("OpenAPI", () => {
  it("documents every route the app serves, with request schemas from the validators, and serves a docs page", async () => {
    const app = await startTestApp();
    const response = await app.http.request("/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: { properties?: object } }> } }>
      >;
    };
    expect(document.openapi).toBe("3.1.0");
    const served = app.http.routes
      .filter(
        (r) =>
          r.method !== "ALL" && (r.path.startsWith("/v1") || ["/", "/healthz", "/readyz", "/metrics"].includes(r.path)),
      )
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m} ${path}`),
    );
    expect([...new Set(served)].sort()).toEqual(documented.sort());
    expect(
      document.paths["/v1/search"]?.post?.requestBody?.content["application/json"]?.schema.properties,
    ).toHaveProperty("query");
    const docs = await app.http.request("/docs");
    expect(docs.status).toBe(200);
    const page = await docs.text();
    // Swagger UI from this origin (the swagger-ui-dist package), never a CDN.
    const sources = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(source).toMatch(/^\/docs\/assets\//);
      expect((await app.http.request(source)).status, source).toBe(200);
    }
    expect(await (await app.http.request("/docs/assets/init.js")).text()).toContain("/openapi.json");
  });
});

describe("security headers", () => {
  it("are on every response, and each page has a policy that loads nothing from elsewhere", async () => {
    const app = await startTestApp();
    for (const path of ["/", "/docs", "/healthz", "/openapi.json", "/v1/collections"]) {
      const response = await app.http.request(path);
      expect(response.headers.get("X-Content-Type-Options"), path).toBe("nosniff");
      expect(response.headers.get("X-Frame-Options"), path).toBe("DENY");
      expect(response.headers.get("Referrer-Policy"), path).toBe("no-referrer");
    }
    for (const path of ["/", "/docs"]) {
      const policy = (await app.http.request(path)).headers.get("Content-Security-Policy") ?? "";
      expect(policy, path).toMatch(/default-src 'none'/);
      expect(policy, path).toMatch(/frame-ancestors 'none'/);
      // Nothing is loaded from elsewhere; the console may send prompts only to engines on this machine.
      const elsewhere = policy.replace(/connect-src[^;]*/, (sources) =>
        sources.replace(/http:\/\/(127\.0\.0\.1|localhost):\d+/g, ""),
      );
      expect(elsewhere, path).not.toMatch(/https?:|\*/);
      expect(policy.match(/script-src ([^;]*)/)?.[1], path).not.toMatch(/unsafe-inline/);
    }
  });
});
