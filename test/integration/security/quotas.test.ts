import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { setTenantQuotas } from "../../../src/tenancy/quotas.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";

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

  it("bound the bytes a tenant stores, counted as documents, imports and files come and go", async () => {
    const app = await startTestApp({ PGRAG_QUOTA_STORED_BYTES: "3000" });
    const { key } = await newTenantKey(app);
    await api(app, "POST", "/v1/collections", { key, json: { name: "c" } });
    const put = (id: string, bytes: number) =>
      api<ErrorJson>(app, "PUT", `/v1/collections/c/documents/${id}`, {
        key,
        body: "x".repeat(bytes),
        contentType: "text/plain",
      });
    const stored = async () =>
      (await api<{ quotas: Usage }>(app, "GET", "/v1/usage", { key })).body.quotas.stored_bytes;
    expect((await put("a", 2000)).status).toBe(202);
    expect(await stored()).toEqual({ used: 2000, limit: 3000 });
    const refused = await put("b", 2000);
    expect(refused.status).toBe(413);
    expect(refused.body.error.message).toMatch(
      /bring the tenant to 4000 bytes stored, past its quota "stored_bytes" \(3000/,
    );
    // Refused whole: nothing of it is stored or counted.
    expect(await stored()).toEqual({ used: 2000, limit: 3000 });
    // A replacement counts the difference.
    expect((await put("a", 2900)).status).toBe(202);
    expect((await stored())?.used).toBe(2900);
    expect((await api(app, "DELETE", "/v1/collections/c/documents/a", { key })).status).toBeLessThan(300);
    expect((await stored())?.used).toBe(0);
    const imported = await api<ErrorJson>(app, "POST", "/v1/collections/c/imports", {
      key,
      body: `${JSON.stringify({ external_id: "i", content: "y".repeat(3500) })}\n`,
      contentType: "application/x-ndjson",
    });
    expect(imported.status).toBe(413);
    expect((await stored())?.used).toBe(0);
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
    // A deleted file frees its place.
    expect(await openai.files.delete(first.id)).toMatchObject({ id: first.id, deleted: true });
    await expect(openai.files.retrieve(first.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const third = await upload("c");
    expect((await openai.files.list()).data.map((f) => f.id)).toEqual([third.id]);

    // With no batch runner here, a batch stays in progress: the second is refused.
    const batch = () =>
      openai.batches.create({ input_file_id: third.id, endpoint: "/v1/embeddings", completion_window: "24h" });
    const running = await batch();
    await expect(batch()).rejects.toThrow(/its quota "running_batches" \(1/);
    // Neither the running batch nor the file it reads its requests from can be deleted to make room.
    const refusedDelete = await api<ErrorJson>(app, "DELETE", `/v1/batches/${running.id}`, { key });
    expect(refusedDelete.status).toBe(409);
    expect(refusedDelete.body.error.message).toMatch(/is in_progress; cancel it and wait for it to end first/);
    const fileInUse = await api<ErrorJson>(app, "DELETE", `/v1/files/${third.id}`, { key });
    expect(fileInUse.status).toBe(409);
    expect(fileInUse.body.error.message).toContain(`holds the requests of batch ${running.id}, which has not ended`);
    // Past its expiry it is gone for the tenant, but kept while the batch reads its requests from it.
    await adminQuery("primary", "UPDATE batch_files SET expires_at = now() - interval '1 second' WHERE id = $1", [
      third.id,
    ]);
    await adminQuery("primary", "SELECT pgrag_delete_expired_files(100)");
    expect(
      (
        await adminQuery<{ n: number }>("primary", "SELECT count(*)::int AS n FROM batch_files WHERE id = $1", [
          third.id,
        ])
      )[0]?.n,
    ).toBe(1);
    await expect(openai.files.retrieve(third.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);

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
