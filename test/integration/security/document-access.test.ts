import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { createApiKey } from "../../../src/tenancy/api-keys.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { api } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

/** Who may read which document: the policy every read path is held to. */
const DOCUMENTS = {
  open: ["*"],
  hr: ["group:hr"],
  alice: ["user:alice"],
  finance: ["group:finance", "user:bob"],
} as const;
const READERS = {
  tenant: { principals: null, sees: ["alice", "finance", "hr", "open"] },
  alice: { principals: ["user:alice", "group:hr"], sees: ["alice", "hr", "open"] },
  bob: { principals: ["user:bob"], sees: ["finance", "open"] },
  carol: { principals: ["user:carol", "group:engineering"], sees: ["open"] },
} as const;
type Reader = keyof typeof READERS;

const sorted = (ids: Iterable<string>) => [...new Set(ids)].sort();

describe("document access lists", () => {
  let app: App;
  let writer: string;
  let tenantId: string;
  const keys = {} as Record<Reader, string>;

  beforeAll(async () => {
    app = await startTestApp({}, { workers: true });
    ({ key: writer, tenantId } = await newTenantKey(app));
    await createCollection(app, writer, "docs");
    const put = await api(app, "POST", "/v1/collections/docs/documents", {
      key: writer,
      json: {
        documents: Object.entries(DOCUMENTS).map(([id, access]) => ({
          external_id: id,
          content: `# The ${id} revenue report\n\nThis quarter the ${id} revenue grew by a tenth. Revenue is reported monthly.`,
          access,
        })),
      },
    });
    expect(put.status).toBe(202);
    await waitForDocuments(app, writer, "docs", Object.keys(DOCUMENTS));
    for (const [name, reader] of Object.entries(READERS)) {
      keys[name as Reader] = await adminTransaction(app, async (tx) => {
        const created = await createApiKey(tx, { tenantId, name, scopes: ["read"], principals: reader.principals });
        return created.key;
      });
    }
  });

  it("holds search (every mode), chat citations and document reads to the reader's principals", async () => {
    for (const [name, reader] of Object.entries(READERS)) {
      const key = keys[name as Reader];
      for (const mode of ["bm25", "vector", "hybrid"]) {
        const found = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
          key,
          json: { collection: "docs", query: "revenue report", mode, k: 20 },
        });
        expect(sorted(found.body.results.map((r) => r.external_id)), `${name} ${mode}`).toEqual(reader.sees);
      }
      const chat = await api<{ citations: { external_id: string }[] }>(app, "POST", "/v1/chat", {
        key,
        json: { collection: "docs", question: "How did revenue grow this quarter?", stream: false, k: 20 },
      });
      expect(chat.status).toBe(200);
      for (const citation of chat.body.citations) expect(reader.sees, name).toContain(citation.external_id);
      const listed = await api<{ documents: { external_id: string }[] }>(app, "GET", "/v1/collections/docs/documents", {
        key,
      });
      expect(sorted(listed.body.documents.map((d) => d.external_id)), name).toEqual(reader.sees);
      for (const id of Object.keys(DOCUMENTS)) {
        const allowed = (reader.sees as readonly string[]).includes(id);
        for (const path of [
          `/v1/collections/docs/documents/${id}`,
          `/v1/collections/docs/documents/${id}/chunks`,
          `/v1/collections/docs/documents/${id}/original`,
        ]) {
          const response = await app.http.request(path, { headers: { Authorization: `Bearer ${key}` } });
          expect(response.status, `${name} ${path}`).toBe(allowed ? 200 : 404);
        }
      }
    }
  });

  it("refuses a scoped key what acts on the whole tenant: batches, imports, document writes", async () => {
    const scopedWriter = await adminTransaction(app, async (tx) => {
      const created = await createApiKey(tx, {
        tenantId,
        name: "scoped writer",
        scopes: ["read", "write"],
        principals: ["user:dana"],
      });
      return created.key;
    });
    const refusals = [
      [
        "POST",
        "/v1/batches",
        { input_file_id: "file-none", endpoint: "/v1/chat/completions", completion_window: "24h" },
        "batches and their files",
      ],
      ["GET", "/v1/files", undefined, "batches and their files"],
      ["GET", "/v1/collections/docs/imports", undefined, "imports"],
      ["PATCH", "/v1/collections/docs/documents/hr", { access: ["user:dana"] }, "changes to collections and documents"],
      ["DELETE", "/v1/collections/docs/documents/hr", undefined, "changes to collections and documents"],
      [
        "POST",
        "/v1/collections/docs/documents",
        { documents: [{ external_id: "hr", content: "mine now" }] },
        "changes to collections and documents",
      ],
    ] as const;
    for (const [method, path, json, what] of refusals) {
      const refused = await api<{ error: { message: string } }>(app, method, path, { key: scopedWriter, json });
      expect([path, refused.status, refused.body.error.message]).toEqual([
        path,
        403,
        `${what} need a tenant-wide key: a key scoped to principals, or an end user, reads only as them`,
      ]);
    }
  });

  it("keeps a stored document's access when an import line gives none", async () => {
    const started = await api<{ import: { id: string } }>(app, "POST", "/v1/collections/docs/imports", {
      key: writer,
      body: `${JSON.stringify({ external_id: "finance", content: "The finance revenue report, revised." })}\n`,
      contentType: "application/x-ndjson",
    });
    expect(started.status).toBe(202);
    const done = await waitFor(
      "the import to complete",
      async () => {
        const { body } = await api<{ import: { status: string; consistency_token: string | null } }>(
          app,
          "GET",
          `/v1/collections/docs/imports/${started.body.import.id}`,
          { key: writer },
        );
        return body.import.status === "completed" ? body.import : undefined;
      },
      60_000,
    );
    const finance = await api<{ document: { access: string[]; version: number } }>(
      app,
      "GET",
      "/v1/collections/docs/documents/finance",
      { key: writer, token: done.consistency_token },
    );
    expect([finance.body.document.version, finance.body.document.access]).toEqual([2, ["group:finance", "user:bob"]]);
  });

  it("is enforced by row-level security, whatever the query asks", async () => {
    for (const [name, reader] of Object.entries(READERS)) {
      const { value } = await app.router.read({ tenantId, principals: reader.principals }, async (db) => ({
        documents: (await db.selectFrom("documents").select("external_id").execute()).map((r) => r.external_id),
        chunks: (
          await db
            .selectFrom("chunks as c")
            .innerJoin("documents as d", "d.id", "c.document_id")
            .select("d.external_id")
            .execute()
        ).map((r) => r.external_id),
      }));
      expect(sorted(value.documents), name).toEqual(reader.sees);
      expect(sorted(value.chunks), name).toEqual(reader.sees);
    }
  });

  it("changes with a PATCH at once, without embedding again, and is listed for administrators", async () => {
    const embedded = app.devInference()?.stats.embeddedInputs ?? 0;
    const patched = await api<{ document: { access: string[]; version: number }; consistency_token: string }>(
      app,
      "PATCH",
      "/v1/collections/docs/documents/hr",
      { key: writer, json: { access: ["user:carol"] } },
    );
    expect([patched.status, patched.body.document.access, patched.body.document.version]).toEqual([
      200,
      ["user:carol"],
      1,
    ]);
    const search = (key: string) =>
      api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
        key,
        token: patched.body.consistency_token,
        json: { collection: "docs", query: "hr revenue report", mode: "bm25", k: 20 },
      });
    expect(sorted((await search(keys.carol)).body.results.map((r) => r.external_id))).toEqual(["hr", "open"]);
    expect(sorted((await search(keys.alice)).body.results.map((r) => r.external_id))).toEqual(["alice", "open"]);
    expect(app.devInference()?.stats.embeddedInputs).toBe(embedded);
    const listed = await api<{ documents: { external_id: string; access: string[] }[] }>(
      app,
      "GET",
      "/v1/collections/docs/documents?principal=user:bob",
      { key: writer, token: patched.body.consistency_token },
    );
    expect(listed.body.documents.map((d) => [d.external_id, d.access])).toEqual([
      ["finance", ["group:finance", "user:bob"]],
    ]);
    const bad = await api<{ error: { message: string } }>(app, "PATCH", "/v1/collections/docs/documents/hr", {
      key: writer,
      json: { access: ["everyone"] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/a principal is "\*", "user:<id>" or "group:<id>"/);
  });
});
