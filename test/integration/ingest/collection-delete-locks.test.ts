import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import type { App } from "../../../src/app.ts";
import { compactCollection } from "../../../src/postings/postings-compactor.ts";
import { encodeBlock } from "../../../src/postings/postings-codec.ts";
import { startTestApp } from "../../helpers/app.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { adminClient, adminQuery, adminTenantCollection } from "../../helpers/cluster.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

/**
 * Compaction locks a collection's postings blocks, and an ingestion write its documents, and then
 * each inserts blocks, whose foreign key check takes a key lock on the collection row. A delete of
 * the collection (or its tenant) takes that row first and then, by cascade, the documents and blocks:
 * in the other order they deadlocked (one aborted, seen in bench:ingest). Both writers now take the
 * collection's key lock before any other row.
 */
let tenantId = "";
let collectionId = "";
let app: App;

beforeAll(async () => {
  app = await startTestApp({}, { workers: true });
  ({ tenantId, collectionId } = await adminTenantCollection("locks"));
  // Two appended blocks of one term: work for compaction (it merges fresh blocks).
  await adminQuery(
    "primary",
    `INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, first_chunk, last_chunk, data)
     VALUES ($1, 'alpha', $2, 2, 2, 3, 1, 2, $3), ($1, 'alpha', $2, 1, 1, 5, 3, 3, $4)`,
    [
      collectionId,
      tenantId,
      encodeBlock([
        { chunkId: 1, tf: 1, dl: 3 },
        { chunkId: 2, tf: 2, dl: 4 },
      ]).data,
      encodeBlock([{ chunkId: 3, tf: 1, dl: 5 }]).data,
    ],
  );
  await adminQuery(
    "primary",
    "INSERT INTO collection_stats (collection_id, tenant_id, chunk_count, total_length) VALUES ($1, $2, 3, 12)",
    [collectionId, tenantId],
  );
});
afterAll(async () => {
  await adminQuery("primary", "DELETE FROM tenants WHERE id = $1", [tenantId]);
});

/** Waits until a statement taking a collection's key lock is blocked behind another transaction. */
const waitingOnCollectionKey = (what: string) =>
  waitFor(what, async () => {
    const waiting = await adminQuery<{ n: number }>(
      "primary",
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE wait_event_type = 'Lock' AND query ILIKE '%from "collections"%for key share%'`,
    );
    return waiting[0]?.n === 1;
  });

describe("writers of a collection's postings beside its delete", () => {
  it("waits for a delete under way before locking any block, then finds nothing to do", async () => {
    const deleting = await adminClient("primary");
    try {
      await deleting.query("BEGIN");
      // Where a delete starts: the collection row, before the cascade reaches the blocks.
      await deleting.query("SELECT 1 FROM collections WHERE id = $1 FOR UPDATE", [collectionId]);
      const compaction = compactCollection(
        app.router,
        { k1: 1.2, b: 0.75 },
        { collectionId, tenantId },
        { maxTerms: 10 },
      );
      await waitingOnCollectionKey("compaction waiting for the collection row");
      // It holds none of the blocks, so the cascade can take them all.
      const blocks = await deleting.query("SELECT 1 FROM bm25_blocks WHERE collection_id = $1 FOR UPDATE NOWAIT", [
        collectionId,
      ]);
      expect(blocks.rowCount).toBe(2);
      await deleting.query("DELETE FROM collections WHERE id = $1", [collectionId]);
      await deleting.query("COMMIT");
      expect(await compaction).toEqual({ terms: 0, resumeAfter: null });
    } finally {
      await deleting.end();
    }
    expect(await adminQuery("primary", "SELECT 1 FROM bm25_blocks WHERE collection_id = $1", [collectionId])).toEqual(
      [],
    );
  });

  it("an ingestion write waits for a delete under way before locking its documents", async () => {
    const { key, tenantId: owner } = await newTenantKey(app);
    await createCollection(app, key, "held");
    const [held] = await adminQuery<{ id: string }>(
      "primary",
      "SELECT id FROM collections WHERE tenant_id = $1 AND name = 'held'",
      [owner],
    );
    const dev = app.devInference();
    // A slow embedding backend keeps the worker busy until the delete below has begun.
    injectDevFaults(dev, { embeddingDelayMs: 1_500 });
    const asked = dev?.stats.embeddingRequests ?? 0;
    const put = await api(app, "PUT", "/v1/collections/held/documents/h1", {
      key,
      json: { content: `held back by a delete ${crypto.randomUUID()}` },
    });
    expect(put.status).toBe(202);
    await waitFor("the worker embedding", async () => (dev?.stats.embeddingRequests ?? 0) > asked);
    const deleting = await adminClient("primary");
    try {
      await deleting.query("BEGIN");
      await deleting.query("SELECT 1 FROM collections WHERE id = $1 FOR UPDATE", [held?.id]);
      await waitingOnCollectionKey("the ingestion write waiting for the collection row");
      // It holds no document, so the cascade can take them all.
      const documents = await deleting.query("SELECT 1 FROM documents WHERE collection_id = $1 FOR UPDATE NOWAIT", [
        held?.id,
      ]);
      expect(documents.rowCount).toBe(1);
      await deleting.query("ROLLBACK"); // the delete given up: the write goes on
    } finally {
      await deleting.end();
    }
    const { documents } = await waitForDocuments(app, key, "held", ["h1"]);
    expect(documents.get("h1")?.status).toBe("ready");
  });
});
