import { afterEach, describe, expect, it } from "vitest";
import { api, newTenantKey } from "../../helpers/api.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminCount, adminQuery, cluster, restoreTopology } from "../../helpers/cluster.ts";
import { createCollection, expectEveryDocumentWrittenOnce, waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

afterEach(() => restoreTopology());

describe("restarts", () => {
  it("PgBouncer restarted under a read loop: the API recovers by itself", async () => {
    const app = await startTestApp({}, { workers: true });
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "bouncer");
    await api(app, "PUT", "/v1/collections/bouncer/documents/d", {
      key,
      json: { content: "PgBouncer pools connections." },
    });
    const { token } = await waitForDocuments(app, key, "bouncer", ["d"]);
    const search = () =>
      api(app, "POST", "/v1/search", { key, token, json: { collection: "bouncer", query: "PgBouncer", mode: "bm25" } });
    expect((await search()).status).toBe(200);
    // Injected: PgBouncer stopped and started again; every pooled server connection is gone.
    await cluster("restart-pgbouncer");
    // Asserted: with no restart of the API, searches succeed again (the bound is generous; the time it
    // took is not the point) and every node is back in rotation.
    await waitFor(
      "searches to succeed after the PgBouncer restart",
      async () => (await search()).status === 200,
      20_000,
    );
    await waitFor("readiness", async () => (await app.http.request("/readyz")).status === 200, 20_000);
  });

  it("primary restarted during ingestion: no document lost or duplicated", async () => {
    const app = await startTestApp(
      { PGRAG_INGEST_JOB_EXPIRE_SECONDS: "3", PGRAG_QUEUE_MAINTENANCE_SECONDS: "1" },
      { workers: true },
    );
    const backend = app.devInference();
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "restart");
    const abstracts = await readScifactCorpus(40);
    const slowEmbeddings = injectDevFaults(backend, { embeddingDelayMs: 150 });
    await api(app, "POST", "/v1/collections/restart/documents", {
      key,
      json: { documents: abstracts.map((a) => ({ external_id: a._id, content: `${a.title}\n\n${a.text}` })) },
    });
    await waitFor(
      "some documents ready",
      async () =>
        (await adminCount("SELECT count(*)::int AS n FROM documents WHERE tenant_id = $1 AND status = 'ready'", [
          tenantId,
        ])) >= 2,
    );
    // Injected: the primary stopped (fast shutdown, in-flight transactions rolled back) and started.
    await cluster("stop-node", "primary");
    await cluster("start-node", "primary");
    slowEmbeddings.clear();
    await waitForDocuments(
      app,
      key,
      "restart",
      abstracts.map((a) => a._id),
      ["ready"],
      90_000,
    );
    const rows = await adminQuery<{ docs: number; bad: number; stats_ok: boolean }>(
      "primary",
      `SELECT count(*)::int AS docs,
              count(*) FILTER (WHERE d.chunk_count <> (SELECT count(*) FROM chunks c WHERE c.document_id = d.id AND c.document_version = d.version)
                                  OR EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND c.document_version <> d.version))::int AS bad,
              (SELECT s.chunk_count = (SELECT count(*) FROM chunks WHERE tenant_id = $1) FROM collection_stats s WHERE s.tenant_id = $1) AS stats_ok
       FROM documents d WHERE d.tenant_id = $1`,
      [tenantId],
    );
    expect(rows[0]).toEqual({ docs: abstracts.length, bad: 0, stats_ok: true });
  });

  it("primary restarted while an import runs: the import completes and writes every document once", async () => {
    const app = await startTestApp(
      {
        PGRAG_INGEST_JOB_EXPIRE_SECONDS: "3",
        PGRAG_QUEUE_MAINTENANCE_SECONDS: "1",
        PGRAG_IMPORT_PARTITION_MIN_CHUNKS: "20",
        PGRAG_IMPORT_BATCH_DOCUMENTS: "4",
      },
      { workers: true },
    );
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "imported");
    const abstracts = await readScifactCorpus(40);
    const slowEmbeddings = injectDevFaults(app.devInference(), { embeddingDelayMs: 300 });
    const started = await api<{ import: { id: string } }>(app, "POST", "/v1/collections/imported/imports", {
      key,
      // Text of this test's own (the tenant in it), so that no embedding is cached by an earlier test.
      body: abstracts
        .map((a) => JSON.stringify({ _id: a._id, title: a.title, text: `${a.text} (${tenantId})` }))
        .join("\n"),
      contentType: "application/x-ndjson",
    });
    expect(started.status).toBe(202);
    const progress = async () =>
      (
        await api<{ import: { status: string; progress: { documents_staged: number } } }>(
          app,
          "GET",
          `/v1/collections/imported/imports/${started.body.import.id}`,
          { key },
        )
      ).body.import;
    // The restart lands while the import runs: in its staging, index build or publication, whichever
    // it has reached (on a busy machine staging can be over by then).
    await waitFor("some documents staged", async () => (await progress()).progress.documents_staged >= 8);
    // Injected: the primary stopped (fast shutdown, the batch in flight rolled back) and started.
    await cluster("stop-node", "primary");
    await cluster("start-node", "primary");
    slowEmbeddings.clear();
    await waitFor(
      "the import to complete",
      async () => (await progress().catch(() => undefined))?.status === "completed",
      90_000,
    );
    await expectEveryDocumentWrittenOnce(tenantId, abstracts.length);
  });
});
