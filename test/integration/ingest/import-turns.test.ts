import { describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection } from "../../helpers/ingest.ts";

interface ImportJson {
  id: string;
  status: string;
  progress: { documents_staged: number };
}

const jsonl = (rows: readonly object[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

describe("imports of several tenants", () => {
  it("take turns: a small import waits for one turn of a large one queued before it, not for all of it", async () => {
    // One runner, so that turns are all that lets the small import through.
    const app = await startTestApp(
      { PGRAG_IMPORT_RUNNERS: "1", PGRAG_IMPORT_TURN_DOCUMENTS: "10", PGRAG_IMPORT_BATCH_DOCUMENTS: "5" },
      { workers: true },
    );
    const abstracts = await readScifactCorpus(301);
    const large = await newTenantKey(app);
    const small = await newTenantKey(app);
    await createCollection(app, large.key, "large");
    await createCollection(app, small.key, "small");
    const upload = (key: string, collection: string, rows: typeof abstracts) =>
      api<{ import: ImportJson }>(app, "POST", `/v1/collections/${collection}/imports`, {
        key,
        body: jsonl(rows.map((a) => ({ _id: a._id, title: a.title, text: a.text }))),
        contentType: "application/x-ndjson",
      });
    const status = async (key: string, collection: string, id: string) =>
      (await api<{ import: ImportJson }>(app, "GET", `/v1/collections/${collection}/imports/${id}`, { key })).body
        .import;

    const first = await upload(large.key, "large", abstracts.slice(0, 300));
    expect(first.status).toBe(202);
    const second = await upload(small.key, "small", abstracts.slice(300));
    expect(second.status).toBe(202);
    await waitFor(
      "the small import to complete",
      async () => (await status(small.key, "small", second.body.import.id)).status === "completed" || undefined,
      60_000,
    );
    // 300 documents are 30 turns of 10: the small import went after a turn or two, not after all of them.
    const largeNow = await status(large.key, "large", first.body.import.id);
    expect(largeNow.status).not.toBe("completed");
    expect(largeNow.progress.documents_staged).toBeLessThan(300);
    const done = await waitFor(
      "the large import to complete",
      async () => {
        const now = await status(large.key, "large", first.body.import.id);
        return now.status === "completed" ? now : undefined;
      },
      120_000,
    );
    expect(done.progress.documents_staged).toBe(300);
  });
});
