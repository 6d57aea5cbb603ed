import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { setTenantQuotas } from "../../../src/tenancy/quotas.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";

type Usage = Record<string, { used: number; limit: number }>;
interface ErrorJson {
  error: { code: string; message: string };
}

const line = (customId: string) =>
  `${JSON.stringify({ custom_id: customId, method: "POST", url: "/v1/embeddings", body: { input: "x" } })}\n`;

describe("per-tenant quotas", () => {
  it("refuse what passes a tenant's quota with 429 naming it, report it, and let a tenant's own quota win", async () => {
    const app = await startTestApp({ PGRAG_QUOTA_COLLECTIONS: "2" });
    const { key, tenantId } = await newTenantKey(app);
    const create = (name: string) => api<ErrorJson>(app, "POST", "/v1/collections", { key, json: { name } });
    expect((await create("one")).status).toBe(201);
    expect((await create("two")).status).toBe(201);
    const refused = await create("three");
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("quota_exceeded");
    expect(refused.body.error.message).toMatch(
      /2 collections, its quota "collections" \(2; default PGRAG_QUOTA_COLLECTIONS\)/,
    );
    const usage = await api<{ quotas: Usage }>(app, "GET", "/v1/usage", { key });
    expect(usage.body.quotas).toMatchObject({
      collections: { used: 2, limit: 2 },
      running_imports: { used: 0, limit: 8 },
      files: { used: 0, limit: 1000 },
      running_batches: { used: 0, limit: 32 },
    });
    // Another tenant counts its own.
    const other = await newTenantKey(app);
    expect((await api(app, "POST", "/v1/collections", { key: other.key, json: { name: "one" } })).status).toBe(201);
    // An operator gives the first tenant a quota of its own.
    await adminTransaction(app, (tx) => setTenantQuotas(tx, tenantId, { collections: 3 }));
    expect((await create("three")).status).toBe(201);
    expect((await api<{ quotas: Usage }>(app, "GET", "/v1/usage", { key })).body.quotas.collections).toEqual({
      used: 3,
      limit: 3,
    });
  });

  it("let only as many concurrent creations through as the quota allows", async () => {
    const app = await startTestApp({ PGRAG_QUOTA_COLLECTIONS: "2" });
    const { key } = await newTenantKey(app);
    const statuses = await Promise.all(
      Array.from(
        { length: 6 },
        async (_, i) => (await api(app, "POST", "/v1/collections", { key, json: { name: `c${i}` } })).status,
      ),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(2);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
  });

  it("bound files, running batches and running imports, and a deleted file frees its place", async () => {
    const app = await startTestApp(
      { PGRAG_QUOTA_FILES: "1", PGRAG_QUOTA_RUNNING_BATCHES: "1", PGRAG_QUOTA_RUNNING_IMPORTS: "1" },
      { listen: true },
    );
    const { key } = await newTenantKey(app);
    const openai = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${app.port()}/v1`, maxRetries: 0 });
    const upload = async (name: string) =>
      openai.files.create({ file: await toFile(Buffer.from(line(name)), `${name}.jsonl`), purpose: "batch" });
    const first = await upload("a");
    const second = await upload("b").catch((error: unknown) => error);
    expect(second).toBeInstanceOf(OpenAI.RateLimitError);
    expect((second as Error).message).toMatch(/its quota "files" \(1; default PGRAG_QUOTA_FILES\)/);

    // With no batch runner here, a batch stays in progress: the second is refused.
    const batch = () =>
      openai.batches.create({ input_file_id: first.id, endpoint: "/v1/embeddings", completion_window: "24h" });
    await batch();
    await expect(batch()).rejects.toThrow(/its quota "running_batches" \(1/);

    // The input file may go: the batch keeps its requests, and the file's place is free again.
    expect(await openai.files.delete(first.id)).toMatchObject({ id: first.id, deleted: true });
    await expect(openai.files.retrieve(first.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const third = await upload("c");
    expect((await openai.files.list()).data.map((f) => f.id)).toEqual([third.id]);

    for (const name of ["x", "y"]) await api(app, "POST", "/v1/collections", { key, json: { name } });
    const importInto = (collection: string) =>
      api<ErrorJson>(app, "POST", `/v1/collections/${collection}/imports`, {
        key,
        body: `${JSON.stringify({ external_id: "d", content: "some text" })}\n`,
        contentType: "application/x-ndjson",
      });
    // No import runner here either: the first stays queued.
    expect((await importInto("x")).status).toBe(202);
    const refused = await importInto("y");
    expect(refused.status).toBe(429);
    expect(refused.body.error.message).toMatch(/its quota "running_imports" \(1/);
  });
});
