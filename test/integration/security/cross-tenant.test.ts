import { sql } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { closeDbNode } from "../../../src/db/pools.ts";
import { createAdminDbNode } from "../../../src/tenancy/admin-db.ts";
import { revokeApiKey } from "../../../src/tenancy/api-keys.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

let app: App;
let a: Awaited<ReturnType<typeof newTenantKey>>;
let b: Awaited<ReturnType<typeof newTenantKey>>;
beforeAll(async () => {
  app = await startTestApp({}, { workers: true });
  a = await newTenantKey(app);
  b = await newTenantKey(app);
  // Both tenants use the same collection name and document ids: only the key tells them apart.
  for (const [tenant, secret] of [
    [a, "Alpha tenant secret: the launch code is ALPHA-17."],
    [b, "Beta tenant secret: the launch code is BETA-42."],
  ] as const) {
    await createCollection(app, tenant.key, "shared");
    await api(app, "PUT", "/v1/collections/shared/documents/plan", { key: tenant.key, json: { content: secret } });
    await waitForDocuments(app, tenant.key, "shared", ["plan"]);
  }
});

describe("tenant A's key never reaches tenant B's data", () => {
  it("documents: get, list and delete see only A's", async () => {
    const doc = await api<{ document: { id: string } }>(app, "GET", "/v1/collections/shared/documents/plan", {
      key: a.key,
    });
    const bDoc = await api<{ document: { id: string } }>(app, "GET", "/v1/collections/shared/documents/plan", {
      key: b.key,
    });
    expect(doc.body.document.id).not.toBe(bDoc.body.document.id);
    const list = await api<{ documents: { id: string }[] }>(app, "GET", "/v1/collections/shared/documents", {
      key: a.key,
    });
    expect(list.body.documents.map((d) => d.id)).toEqual([doc.body.document.id]);
    const collections = await api<{ collections: { name: string }[] }>(app, "GET", "/v1/collections", { key: a.key });
    expect(collections.body.collections.map((c) => c.name)).toEqual(["shared"]);
  });

  it("search and chat only ever return A's chunks", async () => {
    for (const mode of ["hybrid", "vector", "bm25"]) {
      const found = await api<{ results: { content: string }[] }>(app, "POST", "/v1/search", {
        key: a.key,
        json: { collection: "shared", query: "Beta tenant secret launch code BETA-42", mode, k: 10 },
      });
      expect(found.status).toBe(200);
      expect(found.body.results.every((r) => r.content.includes("ALPHA"))).toBe(true);
    }
    const chat = await api<{ answer: string; citations: { text: string }[] }>(app, "POST", "/v1/chat", {
      key: a.key,
      json: { collection: "shared", question: "What is the Beta launch code?", stream: false },
    });
    expect(chat.status).toBe(200);
    expect(JSON.stringify(chat.body)).not.toContain("BETA-42");
  });

  it("deleting and reading B's conversation or document with A's key is a 404, and B's data stays", async () => {
    const bChat = await api<{ conversation_id: string }>(app, "POST", "/v1/chat", {
      key: b.key,
      json: { collection: "shared", question: "What is the launch code?", stream: false },
    });
    const stolen = await api(app, "GET", `/v1/conversations/${bChat.body.conversation_id}`, { key: a.key });
    expect(stolen.status).toBe(404);
    const { documents } = await waitForDocuments(app, b.key, "shared", ["plan"]);
    await api(app, "DELETE", "/v1/collections/shared/documents/plan", { key: a.key });
    const still = await api<{ document: { id: string } }>(app, "GET", "/v1/collections/shared/documents/plan", {
      key: b.key,
    });
    expect(still.body.document.id).toBe(documents.get("plan")?.id);
    // A's own document was the one deleted.
    expect((await api(app, "GET", "/v1/collections/shared/documents/plan", { key: a.key })).status).toBe(404);
  });

  it("row-level security hides other tenants' rows even from a query that forgets to filter", async () => {
    // The kind of bug RLS exists for: no tenant condition at all in the SQL.
    const asA = await app.router.read({ tenantId: a.tenantId }, (db) =>
      sql<{ tenant_id: string }>`SELECT DISTINCT tenant_id FROM collections`.execute(db),
    );
    expect(asA.value.rows.map((r) => r.tenant_id)).toEqual([a.tenantId]);
    const nobody = await app.router.read({}, (db) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM collections`.execute(db),
    );
    expect(nobody.value.rows[0]?.n).toBe(0);
    // Writing a row for B while acting as A is refused by the policy's WITH CHECK.
    await expect(
      app.router.write(
        {
          tenantId: a.tenantId,
        },
        (tx) => sql`UPDATE documents SET title = 'pwned' WHERE tenant_id = ${b.tenantId}`.execute(tx),
      ),
    ).resolves.toMatchObject({ value: { numAffectedRows: 0n } });
    await expect(
      app.router.write(
        {
          tenantId: a.tenantId,
        },
        (tx) => sql`INSERT INTO collections (tenant_id, name) VALUES (${b.tenantId}, 'intruder')`.execute(tx),
      ),
    ).rejects.toThrow(/row-level security/);
  });

  it("keys: a revoked key stops working once its cache entry expires", async () => {
    const revocable = await startTestApp({ PGRAG_AUTH_CACHE_TTL_MS: "1" }, { workers: true });
    const k = await newTenantKey(revocable);
    expect((await api(revocable, "GET", "/v1/collections", { key: k.key })).status).toBe(200);
    const admin = createAdminDbNode(revocable.config);
    try {
      expect(await revokeApiKey(admin.db, k.id)).toBe(true);
    } finally {
      await closeDbNode(admin);
    }
    await waitFor(
      "the revoked key refused",
      async () => (await api(revocable, "GET", "/v1/collections", { key: k.key })).status === 401,
    );
  });

  it("keys: missing, unknown and under-scoped keys are refused", async () => {
    const reader = await newTenantKey(app, ["read"]);
    expect((await api(app, "GET", "/v1/collections")).status).toBe(401);
    expect(
      (await api(app, "GET", "/v1/collections", { key: "pgr_abcdefgh_notarealkeynotarealkeynotarealkey1" })).status,
    ).toBe(401);
    const write = await api<{ error: { message: string } }>(app, "POST", "/v1/collections", {
      key: reader.key,
      json: { name: "x" },
    });
    expect([write.status, write.body.error.message]).toEqual([403, "this API key lacks the 'write' scope"]);
  });
});
