import { describe, expect, it } from "vitest";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

describe("ingestion order", () => {
  it("runs one tenant's single upload ahead of another's bulk upload queued before it", async () => {
    // The API alone first, so that both writes are queued before any worker runs.
    const api0 = await startTestApp();
    const bulk = await newTenantKey(api0);
    const single = await newTenantKey(api0);
    await createCollection(api0, bulk.key, "bulk");
    await createCollection(api0, single.key, "one");
    const abstracts = await readScifactCorpus(301);
    const queued = await api(api0, "POST", "/v1/collections/bulk/documents", {
      key: bulk.key,
      json: { documents: abstracts.slice(0, 300).map((a) => ({ external_id: a._id, content: a.text })) },
    });
    expect(queued.status).toBe(202);
    const last = abstracts[300];
    if (!last) throw new Error("no abstracts");
    expect(
      (await api(api0, "PUT", "/v1/collections/one/documents/x", { key: single.key, json: { content: last.text } }))
        .status,
    ).toBe(202);
    // Workers in batches of 16: the single upload is in the first.
    const workers = await startTestApp({ PGRAG_WORKER_BATCH_SIZE: "16" }, { workers: true });
    await waitForDocuments(workers, single.key, "one", ["x"]);
    await waitForDocuments(
      workers,
      bulk.key,
      "bulk",
      abstracts.slice(0, 300).map((a) => a._id),
    );
    // When each became ready (its transaction's time): in queue order, all 300 would come before it;
    // ahead of them, at most the batches the other fetch loops took at the same time.
    const [order] = await adminQuery<{ before: number }>(
      "primary",
      `SELECT count(*)::int AS before FROM documents d
       WHERE d.tenant_id = $1 AND d.updated_at < (SELECT x.updated_at FROM documents x WHERE x.tenant_id = $2)`,
      [bulk.tenantId, single.tenantId],
    );
    expect(order?.before).toBeLessThan(100);
  });
});
