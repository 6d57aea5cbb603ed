import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { EmbeddingClient } from "../../src/inference/embedding-client.ts";

/** An embeddings backend that answers only when told to, and records the order requests reached it. */
function heldBackend(dimension: number) {
  const seen: string[] = [];
  const held: (() => void)[] = [];
  const fetch = async (_input: string | URL | Request, init?: RequestInit) => {
    const { input } = JSON.parse(String(init?.body)) as { input: string[] };
    seen.push(input[0] ?? "");
    await new Promise<void>((resolve) => held.push(resolve));
    // The openai package asks for base64 and decodes it.
    const embedding = Buffer.from(new Float32Array(dimension).buffer).toString("base64");
    const data = input.map((_, index) => ({ object: "embedding", index, embedding }));
    return new Response(JSON.stringify({ object: "list", data, model: "m", usage: {} }), {
      headers: { "Content-Type": "application/json" },
    });
  };
  return { fetch, seen, held };
}

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
};

describe("embedding lanes", () => {
  it("serves a query's embedding before the background work queued ahead of it, which never takes every slot", async () => {
    const config = loadConfig({ PGRAG_EMBEDDING_CONCURRENCY: "3", PGRAG_EMBEDDING_BATCH_SIZE: "1" });
    const backend = heldBackend(config.embedding.dimension);
    const client = new EmbeddingClient(
      { baseURL: "http://backend.invalid/v1", apiKey: "test", fetch: backend.fetch },
      config,
      new Registry(),
    );
    // One tenant's ingestion: ten requests of one text each.
    const ingestion = client.embed(
      Array.from({ length: 10 }, (_, i) => `chunk ${i}`),
      { tenantId: "a", priority: "batch" },
    );
    // Background work takes two of the three slots; the third stays free for queries.
    await until(() => backend.seen.length === 2);
    const query = client.embed(["the query"], { tenantId: "b", priority: "interactive" });
    await until(() => backend.seen.length === 3);
    expect(backend.seen).toEqual(["chunk 0", "chunk 1", "the query"]);
    // A query that finds every slot taken is next when one frees, ahead of the eight chunks waiting.
    const second = client.embed(["second query"], { tenantId: "c", priority: "interactive" });
    backend.held.shift()?.();
    await until(() => backend.seen.length === 4);
    expect(backend.seen[3]).toBe("second query");
    while (backend.seen.length < 12 || backend.held.length > 0) {
      backend.held.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await query).toHaveLength(1);
    expect(await second).toHaveLength(1);
    expect(await ingestion).toHaveLength(10);
  });

  it("gives tenants' background work turns, not first come first served", async () => {
    const config = loadConfig({ PGRAG_EMBEDDING_CONCURRENCY: "2", PGRAG_EMBEDDING_BATCH_SIZE: "1" });
    const backend = heldBackend(config.embedding.dimension);
    const client = new EmbeddingClient(
      { baseURL: "http://backend.invalid/v1", apiKey: "test", fetch: backend.fetch },
      config,
      new Registry(),
    );
    const large = client.embed(
      Array.from({ length: 6 }, (_, i) => `large ${i}`),
      { tenantId: "large", priority: "batch" },
    );
    await until(() => backend.seen.length === 1);
    const small = client.embed(["small 0"], { tenantId: "small", priority: "batch" });
    while (backend.seen.length < 7 || backend.held.length > 0) {
      backend.held.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all([large, small]);
    // One background slot of two: the small tenant's one request waits for one of the large tenant's
    // (queued before it), not for all five.
    expect(backend.seen.slice(0, 3)).toEqual(["large 0", "large 1", "small 0"]);
  });
});
