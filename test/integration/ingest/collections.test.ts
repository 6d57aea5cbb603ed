import { describe, expect, it } from "vitest";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

interface ErrorJson {
  error: { code: string; message: string };
}

describe("collections and uploads", () => {
  it("delete a collection with its documents, chunks, postings and conversations", async () => {
    const app = await startTestApp({}, { workers: true });
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "gone");
    await createCollection(app, key, "kept");
    for (const collection of ["gone", "kept"]) {
      await api(app, "PUT", `/v1/collections/${collection}/documents/a`, {
        key,
        json: { content: "Zebrafish regenerate their hearts after injury, which mammals cannot do." },
      });
      await waitForDocuments(app, key, collection, ["a"]);
      // A conversation in each: /v1/chat answers as Server-Sent Events, read to the end.
      const chat = await app.http.request("/v1/chat", {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ collection, question: "What do zebrafish regenerate?" }),
      });
      expect(await chat.text()).toMatch(/event: done/);
    }
    const rows = async (collection: string) =>
      (
        await adminQuery<{ documents: number; chunks: number; blocks: number; conversations: number }>(
          "primary",
          `SELECT (SELECT count(*)::int FROM documents d WHERE d.collection_id = c.id) AS documents,
                  (SELECT count(*)::int FROM chunks k WHERE k.collection_id = c.id) AS chunks,
                  (SELECT count(*)::int FROM bm25_blocks b WHERE b.collection_id = c.id) AS blocks,
                  (SELECT count(*)::int FROM conversations v WHERE v.collection_id = c.id) AS conversations
           FROM collections c WHERE c.tenant_id = $1 AND c.name = $2`,
          [tenantId, collection],
        )
      )[0];
    expect(await rows("gone")).toMatchObject({ documents: 1, conversations: 1 });
    const conversationsBefore = await adminQuery<{ n: number }>(
      "primary",
      "SELECT count(*)::int AS n FROM conversations WHERE tenant_id = $1",
      [tenantId],
    );
    const deleted = await api<{ deleted: boolean; documents: number }>(app, "DELETE", "/v1/collections/gone", { key });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ deleted: true, documents: 1 });
    expect(await rows("gone")).toBeUndefined();
    const [left] = await adminQuery<{ chunks: number; blocks: number }>(
      "primary",
      `SELECT (SELECT count(*)::int FROM chunks WHERE tenant_id = $1) AS chunks,
              (SELECT count(*)::int FROM bm25_blocks WHERE tenant_id = $1) AS blocks`,
      [tenantId],
    );
    const kept = await rows("kept");
    expect(left).toEqual({ chunks: kept?.chunks, blocks: kept?.blocks });
    expect(
      (
        await adminQuery<{ n: number }>(
          "primary",
          "SELECT count(*)::int AS n FROM conversations WHERE tenant_id = $1",
          [tenantId],
        )
      )[0]?.n,
    ).toBe((conversationsBefore[0]?.n ?? 0) - 1);
    const again = await api<ErrorJson>(app, "DELETE", "/v1/collections/gone", { key });
    expect(again.status).toBe(404);
  });

  it("wait, when asked, until written documents are searchable, and say where to follow them", async () => {
    const app = await startTestApp({}, { workers: true });
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "waiting");
    const put = await app.http.request("/v1/collections/waiting/documents/zebra", {
      method: "PUT",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Prefer: "wait=30" },
      body: JSON.stringify({ content: "Zebrafish regenerate their hearts after injury." }),
    });
    expect(put.status).toBe(200);
    expect(put.headers.get("Preference-Applied")).toBe("wait=30");
    expect(put.headers.get("Location")).toBe("/v1/collections/waiting/documents/zebra");
    const written = (await put.json()) as { document: { status: string }; consistency_token: string };
    expect(written.document.status).toBe("ready");
    // The token covers the ingestion: a search with it finds the document at once, on any node.
    const found = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
      key,
      token: written.consistency_token,
      json: { collection: "waiting", query: "zebrafish hearts", mode: "bm25" },
    });
    expect(found.body.results.map((r) => r.external_id)).toEqual(["zebra"]);

    const batch = await api<{ documents: { external_id: string; status: string }[] }>(
      app,
      "POST",
      "/v1/collections/waiting/documents?wait=30",
      {
        key,
        json: {
          documents: [
            { external_id: "b1", content: "One." },
            { external_id: "b2", content: "Two." },
          ],
        },
      },
    );
    expect(batch.status).toBe(200);
    expect(batch.body.documents.map((d) => d.status)).toEqual(["ready", "ready"]);
    // Without a wait: 202 at once, with each document's state and where to follow them.
    const queued = await api<{ document: { status: string } }>(app, "PUT", "/v1/collections/waiting/documents/q", {
      key,
      json: { content: "Queued." },
    });
    expect(queued.status).toBe(202);
    expect(queued.body.document.status).toBe("pending");
    expect(queued.headers.get("Location")).toBe("/v1/collections/waiting/documents/q");
    const bad = await api<ErrorJson>(app, "PUT", "/v1/collections/waiting/documents/q?wait=soon", {
      key,
      json: { content: "Queued." },
    });
    expect(bad.status).toBe(400);
  });

  it("decode a text upload in the charset its Content-Type names, and refuse an unknown one", async () => {
    const app = await startTestApp();
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "latin");
    // "Café crème" in ISO-8859-1: é and è are single bytes that are not valid UTF-8.
    const latin1 = new Uint8Array([0x43, 0x61, 0x66, 0xe9, 0x20, 0x63, 0x72, 0xe8, 0x6d, 0x65]);
    const put = (contentType: string) =>
      api<ErrorJson>(app, "PUT", "/v1/collections/latin/documents/cafe", { key, body: latin1, contentType });
    const refused = await put("text/plain");
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toMatch(/not valid UTF-8 text: name its charset in the Content-Type/);
    expect((await put("text/plain; charset=iso-8859-1")).status).toBe(202);
    const stored = await adminQuery<{ content: string }>(
      "primary",
      "SELECT content FROM documents WHERE external_id = 'cafe' ORDER BY created_at DESC LIMIT 1",
    );
    expect(stored[0]?.content).toBe("Café crème");
    const unknown = await put("text/plain; charset=klingon");
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unknown charset "klingon"/);
  });

  it("tell a client that sent JSON without a JSON content type to send one", async () => {
    const app = await startTestApp();
    const { key } = await newTenantKey(app);
    const form = await api<ErrorJson>(app, "POST", "/v1/search", {
      key,
      body: JSON.stringify({ collection: "x", query: "y" }),
      contentType: "application/x-www-form-urlencoded",
    });
    expect(form.status).toBe(400);
    expect(form.body.error.message).toBe(
      'send the body as JSON with Content-Type: application/json (got "application/x-www-form-urlencoded")',
    );
    const none = await api<ErrorJson>(app, "POST", "/v1/collections", { key, body: '{"name": "x"}' });
    expect(none.body.error.message).toMatch(/send the body as JSON with Content-Type: application\/json/);
  });
});
