import { describe, expect, it } from "vitest";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

describe("ingestion write slots", () => {
  it("let fetch loops prepare batches side by side but write at most PGRAG_WORKER_WRITERS at once", async () => {
    // Four loops of small batches, one writer: without the slot, up to four would write at once.
    const app = await startTestApp(
      { PGRAG_WORKER_CONCURRENCY: "4", PGRAG_WORKER_WRITERS: "1", PGRAG_WORKER_BATCH_SIZE: "2" },
      { workers: true },
    );
    const writing = app.registry.getSingleMetric("pgrag_ingest_writes_in_progress");
    if (!writing) throw new Error("the worker registers pgrag_ingest_writes_in_progress");
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "slots");
    const abstracts = await readScifactCorpus(40);
    let done = false;
    const seen = new Set<number>();
    // Samples the gauge between the event loop's tasks, where every write starts and ends.
    const sampler = (async () => {
      while (!done) {
        seen.add((await writing.get()).values[0]?.value ?? 0);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await api(app, "POST", "/v1/collections/slots/documents", {
      key,
      json: { documents: abstracts.map((a) => ({ external_id: a._id, content: `${a.title}\n\n${a.text}` })) },
    });
    const { documents } = await waitForDocuments(
      app,
      key,
      "slots",
      abstracts.map((a) => a._id),
    );
    done = true;
    await sampler;
    expect(documents.size).toBe(abstracts.length);
    expect([...seen].sort()).toEqual([0, 1]);
  });
});
