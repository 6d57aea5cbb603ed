import { describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { inferenceSettings, startTestApp } from "../../helpers/app.ts";
import { killWorker, spawnWorker } from "../../helpers/worker-process.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { createCollection, expectEveryDocumentWrittenOnce } from "../../helpers/ingest.ts";

// Jobs expire quickly so that a dead runner's import comes back within the test.
const settings = {
  PGRAG_INGEST_JOB_EXPIRE_SECONDS: "3",
  PGRAG_QUEUE_MAINTENANCE_SECONDS: "1",
  PGRAG_IMPORT_PARTITION_MIN_CHUNKS: "20",
  PGRAG_IMPORT_BATCH_DOCUMENTS: "4",
};

interface ImportJson {
  status: string;
  placement: string | null;
  progress: { documents_staged: number };
  consistency_token: string | null;
}

describe("an import whose runner is killed mid-way", () => {
  it("serves the collection as it was meanwhile, then resumes in another process and writes every document once", async () => {
    // The API process runs no workers; the import runs in a separate `pgrag worker`, killed mid-way.
    const app = await startTestApp({ ...settings, PGRAG_WORKER_CONCURRENCY: "0" });
    const slow = injectDevFaults(app.devInference(), { embeddingDelayMs: 300 });
    const { key, tenantId } = await newTenantKey(app);
    await createCollection(app, key, "resumed");
    const abstracts = await readScifactCorpus(40);
    // Text of this test's own (the tenant in it), so that no embedding is cached by an earlier test.
    const body = abstracts
      .map((a) => JSON.stringify({ _id: a._id, title: a.title, text: `${a.text} (${tenantId})` }))
      .join("\n");
    const started = await api<{ import: { id: string } }>(app, "POST", "/v1/collections/resumed/imports", {
      key,
      body,
      contentType: "application/x-ndjson",
    });
    expect(started.status).toBe(202);
    const importPath = `/v1/collections/resumed/imports/${started.body.import.id}`;
    const progress = async () => (await api<{ import: ImportJson }>(app, "GET", importPath, { key })).body.import;

    const worker = spawnWorker({
      ...settings,
      ...inferenceSettings(app),
      PGRAG_WORKER_CONCURRENCY: "1",
    });
    try {
      await waitFor("a few documents staged", async () => (await progress()).progress.documents_staged >= 8, 30_000);
    } finally {
      await killWorker(worker);
    }

    // Mid-import, as documented: the import reports its progress, and the collection is served as it
    // was before it (empty here) — nothing half-imported is searchable.
    const midway = await progress();
    expect(midway.status).toBe("embedding");
    expect(midway.progress.documents_staged).toBeLessThan(abstracts.length);
    const searched = await api<{ results: unknown[] }>(app, "POST", "/v1/search", {
      key,
      json: { collection: "resumed", query: abstracts[0]?.title, mode: "bm25" },
    });
    expect(searched.body.results).toEqual([]);

    slow.clear();
    await startTestApp({ ...settings, ...inferenceSettings(app), PGRAG_WORKER_CONCURRENCY: "1" });
    const done = await waitFor(
      "the import resumed and completed",
      async () => {
        const state = await progress();
        return state.status === "completed" ? state : undefined;
      },
      60_000,
    );
    expect(done.placement).toBe("own_partition");
    await expectEveryDocumentWrittenOnce(tenantId, abstracts.length);
    const [staged] = await adminQuery<{ n: number }>(
      "primary",
      "SELECT count(*)::int AS n FROM import_documents WHERE import_id = $1",
      [started.body.import.id],
    );
    expect(staged?.n).toBe(0);
    // Right after it finishes, its token reads it on a replica.
    const found = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
      key,
      token: done.consistency_token,
      json: { collection: "resumed", query: abstracts[0]?.title, mode: "bm25", k: 1 },
    });
    expect(found.body.results[0]?.external_id).toBe(abstracts[0]?._id);
  });
});
