import http from "node:http";
import { describe, expect, it, vi } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { createApiKey } from "../../../src/tenancy/api-keys.ts";
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
    const limited = await api<{ error: { code: string; message: string } }>(app, "GET", "/v1/collections", {
      key: first.key,
    });
    expect(limited.body.error.code).toBe("rate_limited");
    expect(limited.body.error.message).toMatch(
      /rate limit of this API key \(1\/s, bursts of 3\) exceeded; retry in \d+ s/,
    );
    expect(Number(limited.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // Another key of the same app is not affected.
    expect((await api(app, "GET", "/v1/collections", { key: second.key })).status).toBe(200);

    const metrics = await (await app.http.request("/metrics")).text();
    expect(metrics).toMatch(/pgrag_http_request_duration_seconds_count\{[^}]*route="\/v1\/collections"[^}]*\} \d+/);
    // A replica may still be catching up on an earlier file's writes (lagging, 1): read again until it is in rotation.
    await waitFor("replica1 up in the metrics", async () =>
      /pgrag_db_node_state\{node="replica1",role="replica"\} 2/.test(await (await app.http.request("/metrics")).text())
        ? true
        : undefined,
    );
    expect(metrics).toMatch(/pgrag_inference_admission\{state="active"\} 0/);
  });
});

describe("per-tenant rate limits", () => {
  it("bound a tenant's keys together: more keys do not buy more; other tenants are unaffected", async () => {
    const app = await startTestApp({ PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "2", PGRAG_RATE_LIMIT_BURST: "1000" });
    const first = await newTenantKey(app);
    const more = await Promise.all(
      [1, 2].map(() =>
        adminTransaction(app, (tx) => createApiKey(tx, { tenantId: first.tenantId, name: "more", scopes: ["read"] })),
      ),
    );
    const keys = [first.key, ...more.map((k) => k.key)];
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await api(app, "GET", "/v1/collections", { key: keys[i % 3] })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    const refused = await api<{ error: { message: string } }>(app, "GET", "/v1/collections", { key: keys[0] });
    expect(refused.body.error.message).toMatch(/this tenant's keys together \(2\/s, bursts of 4\)/);
    const other = await newTenantKey(app);
    expect((await api(app, "GET", "/v1/collections", { key: other.key })).status).toBe(200);
  });
});

describe("request body limits", () => {
  it("refuse an oversized JSON body on every route with 413 before reading it, naming the setting", async () => {
    const app = await startTestApp({ PGRAG_MAX_JSON_BODY_BYTES: "65536" });
    const { key } = await newTenantKey(app);
    const big = JSON.stringify({ collection: "c", query: "x".repeat(100_000) });
    for (const [method, path] of [
      ["POST", "/v1/search"],
      ["POST", "/v1/chat"],
      ["POST", "/v1/chat/completions"],
      ["POST", "/v1/feedback"],
      ["POST", "/v1/collections"],
    ] as const) {
      const response = await api<{ error: { code: string; message: string } }>(app, method, path, {
        key,
        body: big,
        contentType: "application/json",
      });
      expect(response.status, path).toBe(413);
      expect(response.body.error.message).toMatch(/larger than 65536 bytes \(PGRAG_MAX_JSON_BODY_BYTES\)/);
    }
    // Unauthenticated, too: the limit comes before the key is looked up.
    expect((await api(app, "POST", "/v1/search", { body: big, contentType: "application/json" })).status).toBe(413);
    // Document uploads keep their own, larger limit.
    const upload = await api(app, "PUT", "/v1/collections/none/documents/a", {
      key,
      body: "y".repeat(100_000),
      contentType: "text/plain",
    });
    expect(upload.status).toBe(404);
  });

  it("refuse JSON nested more than 64 deep on every JSON route and import line with a 400 naming the limit", async () => {
    const app = await startTestApp();
    const { key } = await newTenantKey(app);
    const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    const body = `{"collection":"c","query":"q","filters":${deep(20_000)}}`;
    for (const [method, path] of [
      ["POST", "/v1/search"],
      ["POST", "/v1/chat"],
      ["POST", "/v1/chat/completions"],
      ["POST", "/v1/feedback"],
      ["POST", "/v1/collections"],
      ["POST", "/v1/batches"],
      ["POST", "/v1/collections/c/documents"],
      ["PUT", "/v1/collections/c/documents/a"],
    ] as const) {
      const response = await api<{ error: { code: string; message: string } }>(app, method, path, {
        key,
        body,
        contentType: "application/json",
      });
      expect(response.status, path).toBe(400);
      expect(response.body.error.message, path).toBe(
        "the request body nests objects or arrays more than 64 levels deep; flatten it",
      );
    }
    await api(app, "POST", "/v1/collections", { key, json: { name: "deep" } });
    const metadata = `{"external_id":"a","content":"x","metadata":{"m":${deep(20_000)}}}\n`;
    const imported = await api<{ error: { message: string } }>(app, "POST", "/v1/collections/deep/imports", {
      key,
      body: metadata,
      contentType: "application/x-ndjson",
    });
    expect(imported.status).toBe(400);
    expect(imported.body.error.message).toMatch(/^line 1 nests objects or arrays more than 64 levels deep/);
  });

  it("answer 413, not a reset, to a client that sends a 20 MB body whole before it reads", async () => {
    const app = await startTestApp({}, { listen: true });
    const { key } = await newTenantKey(app);
    const body = Buffer.alloc(20 * 1024 * 1024, "x");
    const errors: string[] = [];
    const answer = await new Promise<{ status: number; text: string }>((resolve) => {
      let status = 0;
      let text = "";
      const request = http.request(
        {
          host: "127.0.0.1",
          port: app.port(),
          path: "/v1/search",
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            "Content-Length": body.length,
            Authorization: `Bearer ${key}`,
          },
        },
        (response) => {
          status = response.statusCode ?? 0;
          response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        },
      );
      // A reset while the body is still being written shows on the socket (EPIPE, ECONNRESET).
      const failed = (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message);
      request.on("error", failed);
      request.on("socket", (socket) => {
        socket.on("error", failed);
        socket.on("close", () => resolve({ status, text }));
      });
      // All of it, as clients that do not ask for 100-continue send it.
      request.end(body);
    });
    expect(errors).toEqual([]);
    expect(answer.status).toBe(413);
    expect(answer.text).toMatch(/larger than \d+ bytes \(PGRAG_MAX_JSON_BODY_BYTES\)/);
  });

  it("bound the OpenAI facade's question as /v1/chat bounds its own", async () => {
    const app = await startTestApp();
    const { key } = await newTenantKey(app);
    const response = await api<{ error: { message: string } }>(app, "POST", "/v1/chat/completions", {
      key,
      json: { model: "rag:any", messages: [{ role: "user", content: "why? ".repeat(2_000) }] },
    });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toMatch(/at most 8000 characters/);
  });
});

describe("unknown API keys", () => {
  it("are refused with 429 after the per-address allowance, before any lookup; a known key still works", async () => {
    const app = await startTestApp({ PGRAG_UNKNOWN_KEYS_PER_MINUTE: "5" });
    const { key } = await newTenantKey(app);
    expect((await api(app, "GET", "/v1/collections", { key })).status).toBe(200); // known, and cached from now on
    const lookups = vi.spyOn(app.router, "read");
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const guess = `pgr_${"a".repeat(8)}_${crypto.randomUUID().replaceAll("-", "")}`;
      statuses.push((await api(app, "GET", "/v1/collections", { key: guess })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    // Five misses cost two lookups each (replica, then primary); the refused ones none.
    expect(lookups).toHaveBeenCalledTimes(10);
    const refused = await api<{ error: { message: string } }>(app, "GET", "/v1/collections", {
      key: `pgr_${"b".repeat(8)}_${"c".repeat(32)}`,
    });
    expect(refused.body.error.message).toMatch(/too many unknown API keys were tried; retry in \d+ s/);
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect((await api(app, "GET", "/v1/collections", { key })).status).toBe(200);
  });
});
