import { describe, expect, it } from "vitest";
import { api, newTenantKey } from "../../helpers/api.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { inferenceSettings, startTestApp } from "../../helpers/app.ts";
import { killWorker, spawnWorker } from "../../helpers/worker-process.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminCount } from "../../helpers/cluster.ts";
import { createCollection, expectEveryDocumentWrittenOnce, waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

// Jobs expire quickly so that a dead worker's jobs come back within the test.
const queueSettings = { PGRAG_INGEST_JOB_EXPIRE_SECONDS: "3", PGRAG_QUEUE_MAINTENANCE_SECONDS: "1" };

describe("a worker killed mid-batch", () => {
  it("loses and duplicates nothing: every document ends ready exactly once", async () => {
    // The API process here runs no workers; ingestion happens in a separate `pgrag worker`.
    const api1 = await startTestApp({ ...queueSettings, PGRAG_WORKER_CONCURRENCY: "0" });
    const backend = api1.devInference();
    if (!backend) throw new Error("expected the in-process dev backend");
    const slowEmbeddings = injectDevFaults(backend, { embeddingDelayMs: 250 }); // slow enough to kill the worker in the middle
    const { key, tenantId } = await newTenantKey(api1);
    await createCollection(api1, key, "crash");
    const abstracts = await readScifactCorpus(40);
    await api(api1, "POST", "/v1/collections/crash/documents", {
      key,
      json: { documents: abstracts.map((a) => ({ external_id: a._id, content: `${a.title}\n\n${a.text}` })) },
    });

    const worker = spawnWorker({
      ...queueSettings,
      ...inferenceSettings(api1),
      PGRAG_WORKER_CONCURRENCY: "2",
      PGRAG_WORKER_BATCH_SIZE: "4",
    });
    const readyCount = () =>
      adminCount("SELECT count(*)::int AS n FROM documents WHERE tenant_id = $1 AND status = 'ready'", [tenantId]);
    try {
      await waitFor("the worker to finish a few documents", async () => (await readyCount()) >= 4, 30_000);
    } finally {
      // Injected: SIGKILL while batches are in flight (no graceful shutdown, jobs stay active).
      await killWorker(worker);
    }
    expect(await readyCount()).toBeLessThan(abstracts.length);

    slowEmbeddings.clear();
    await startTestApp({
      ...queueSettings,
      ...inferenceSettings(api1),
      PGRAG_WORKER_CONCURRENCY: "2",
    });
    const { documents } = await waitForDocuments(
      api1,
      key,
      "crash",
      abstracts.map((a) => a._id),
      ["ready"],
      90_000,
    );
    expect(documents.size).toBe(abstracts.length);

    await expectEveryDocumentWrittenOnce(tenantId, abstracts.length);
  });
});
