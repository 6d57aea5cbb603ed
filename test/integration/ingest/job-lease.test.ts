import { describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminQuery } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

// A file of its own: no other app's workers may take the job. Its app runs no batch runner either:
// batch lines another file left unfinished would be embedded by this backend and counted below.
describe("a batch that takes longer than its jobs' expiry", () => {
  it("runs once: the worker renews the leases of the jobs it is running", async () => {
    const slow = await startTestApp(
      {
        PGRAG_INGEST_JOB_EXPIRE_SECONDS: "2",
        PGRAG_QUEUE_MAINTENANCE_SECONDS: "1",
        PGRAG_WORKER_POLL_SECONDS: "0.5",
        PGRAG_BATCH_CONCURRENCY: "0",
      },
      { workers: true },
    );
    const backend = slow.devInference();
    injectDevFaults(backend, { embeddingDelayMs: 4_000 }); // twice the expiry
    // Counted by text: this app's import runner may embed what another file's imports left behind.
    const inputCounts = new Map<string, number>();
    if (backend) backend.stats.inputCounts = inputCounts;
    const content = `slow to embed ${crypto.randomUUID()}`;
    const { key } = await newTenantKey(slow);
    await createCollection(slow, key, "lease");
    await api(slow, "PUT", "/v1/collections/lease/documents/long", {
      key,
      json: { content },
    });
    const { documents } = await waitForDocuments(slow, key, "lease", ["long"]);
    // The worker completes the job just after the document's write commits: re-read until it has.
    const jobs = await waitFor("the ingestion job to end", async () => {
      const rows = await adminQuery<{ state: string; retry_count: number }>(
        "primary",
        "SELECT state, retry_count FROM pgboss.job WHERE name = 'ingest-document' AND data->>'documentId' = $1",
        [documents.get("long")?.id],
      );
      return rows.every((job) => job.state !== "active") ? rows : undefined;
    });
    expect(jobs).toEqual([{ state: "completed", retry_count: 0 }]);
    expect(inputCounts.get(content)).toBe(1);
  });
});
