import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection } from "../../helpers/ingest.ts";

let app: App;
let key: string;
beforeAll(async () => {
  app = await startTestApp({
    PGRAG_MAX_BODY_BYTES: String(256 * 1024),
    PGRAG_MAX_DOCUMENT_BYTES: String(64 * 1024),
    PGRAG_RATE_LIMIT_PER_SECOND: "100000",
    PGRAG_RATE_LIMIT_BURST: "100000",
    PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "100000",
  });
  ({ key } = await newTenantKey(app));
  await createCollection(app, key, "fuzz");
});

const hostileStrings = fc.oneof(
  fc.string(),
  fc.constantFrom(
    "'; DROP TABLE chunks; --",
    "a & b | !c:* <-> (d",
    "$1::text",
    "\\",
    "\u0000",
    "\ud800",
    "%00",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '{"$ne": null}',
    "../../etc/passwd",
  ),
  fc.string({ minLength: 5_000, maxLength: 20_000 }),
);

/** Nested arrays/objects far deeper than any schema expects. */
const deep = fc.integer({ min: 50, max: 3_000 }).map((depth) => {
  let value: unknown = "x";
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
});

const anyJson = fc.oneof(fc.anything(), deep, fc.dictionary(hostileStrings, fc.oneof(hostileStrings, fc.anything())));

/** Realistic shapes with hostile values, so that validation passes sometimes and SQL is reached. */
const searchLike = fc.record(
  {
    query: hostileStrings,
    collection: fc.oneof(fc.constant("fuzz"), hostileStrings),
    mode: fc.oneof(fc.constantFrom("hybrid", "vector", "bm25"), hostileStrings),
    k: fc.oneof(fc.integer({ min: -5, max: 200 }), fc.double(), hostileStrings),
    filter: fc.oneof(
      fc.record({
        metadata: fc.dictionary(
          hostileStrings,
          fc.oneof(hostileStrings, fc.integer(), fc.record({ gte: fc.oneof(fc.integer(), hostileStrings) })),
        ),
      }),
      fc.record({ document_ids: fc.array(hostileStrings, { maxLength: 5 }) }),
      anyJson,
    ),
  },
  { requiredKeys: [] },
);

const documentLike = fc.record(
  {
    content: fc.oneof(hostileStrings, fc.anything()),
    content_type: fc.oneof(fc.constantFrom("text/plain", "text/html", "text/markdown"), hostileStrings),
    title: hostileStrings,
    metadata: anyJson,
  },
  { requiredKeys: [] },
);

interface Endpoint {
  method: string;
  path: string;
  body: fc.Arbitrary<unknown>;
}

const endpoints: Endpoint[] = [
  {
    method: "POST",
    path: "/v1/collections",
    body: fc.oneof(anyJson, fc.record({ name: hostileStrings, language: hostileStrings }, { requiredKeys: [] })),
  },
  {
    method: "POST",
    path: "/v1/collections/fuzz/documents",
    body: fc.oneof(anyJson, fc.record({ documents: fc.array(fc.oneof(documentLike, anyJson), { maxLength: 4 }) })),
  },
  { method: "PUT", path: "/v1/collections/fuzz/documents/doc-1", body: fc.oneof(anyJson, documentLike) },
  { method: "POST", path: "/v1/search", body: fc.oneof(anyJson, searchLike) },
  {
    method: "POST",
    path: "/v1/chat",
    body: fc.oneof(
      anyJson,
      fc.record({ question: hostileStrings, collection: fc.constant("fuzz"), stream: fc.constant(false) }),
    ),
  },
  {
    method: "POST",
    path: "/v1/chat/completions",
    body: fc.oneof(
      anyJson,
      fc.record({
        model: fc.constant("rag:fuzz"),
        messages: fc.array(
          fc.record({ role: fc.constantFrom("user", "assistant", "system"), content: hostileStrings }),
          { maxLength: 3 },
        ),
      }),
    ),
  },
];

async function send(method: string, path: string, body: BodyInit, contentType = "application/json") {
  const response = await app.http.request(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": contentType },
    body,
  });
  const text = await response.text();
  return { status: response.status, text };
}

function expectNamedClientError(status: number, text: string) {
  expect(status, text.slice(0, 300)).toBeLessThan(500);
  if (status >= 400) {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    expect(typeof parsed.error?.code).toBe("string");
    expect(parsed.error?.message?.length ?? 0).toBeGreaterThan(5);
  }
}

describe("hostile payloads to every JSON endpoint", () => {
  for (const endpoint of endpoints) {
    it(`${endpoint.method} ${endpoint.path}: never a 5xx, always a JSON error naming the problem`, async () => {
      await fc.assert(
        fc.asyncProperty(endpoint.body, async (body) => {
          let encoded: string;
          try {
            encoded = JSON.stringify(body) ?? "null";
          } catch {
            return; // values JSON cannot express (e.g. BigInt) never reach the wire
          }
          const { status, text } = await send(endpoint.method, endpoint.path, encoded);
          expectNamedClientError(status, text);
        }),
        { numRuns: 40 },
      );
    });
  }

  it("invalid UTF-8 and truncated JSON bodies get a 400 with a message", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.constantFrom(...endpoints),
        async (bytes, endpoint) => {
          const invalid = new Uint8Array([...bytes, 0xff, 0xfe, 0xc3]);
          const { status, text } = await send(endpoint.method, endpoint.path, invalid);
          expectNamedClientError(status, text);
          expect(status).toBeGreaterThanOrEqual(400);
        },
      ),
      { numRuns: 30 },
    );
    const raw = await send(
      "PUT",
      "/v1/collections/fuzz/documents/raw",
      new Uint8Array([0x61, 0xff, 0x62]),
      "text/plain",
    );
    expect(raw.status).toBe(400);
    expect(raw.text).toContain("not valid UTF-8");
  });

  it("a body over the limit is refused with 413 before it is parsed", async () => {
    const { status, text } = await send(
      "POST",
      "/v1/collections/fuzz/documents",
      JSON.stringify({ documents: [{ external_id: "big", content: "x".repeat(300 * 1024) }] }),
    );
    expect(status).toBe(413);
    expect(text).toContain("PGRAG_MAX_BODY_BYTES");
  });
});
