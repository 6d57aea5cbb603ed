import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import type { App } from "../../../src/app.ts";
import { compactCollection } from "../../../src/ingest/postings-compactor.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminClient, adminQuery, adminTenantCollection } from "../../helpers/cluster.ts";

/**
 * Compaction locks a collection's postings blocks and then inserts blocks, whose foreign key check
 * takes a key lock on the collection row. A delete of the collection (or its tenant) takes that row
 * first and then, by cascade, the blocks: in the other order the two deadlocked (one aborted, seen in
 * bench:ingest). Compaction now takes the collection's key lock before any block.
 */
let tenantId = "";
let collectionId = "";
let app: App;

beforeAll(async () => {
  app = await startTestApp();
  ({ tenantId, collectionId } = await adminTenantCollection("locks"));
  // Two appended blocks of one term: work for compaction (it merges fresh blocks).
  await adminQuery(
    "primary",
    `INSERT INTO bm25_blocks (collection_id, term, tenant_id, postings, max_tf, min_dl, chunk_ids, tfs, dls)
     VALUES ($1, 'alpha', $2, 2, 2, 3, '{1,2}', '{1,2}', '{3,4}'), ($1, 'alpha', $2, 1, 1, 5, '{3}', '{1}', '{5}')`,
    [collectionId, tenantId],
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

describe("postings compaction beside a collection's delete", () => {
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
      await waitFor("compaction waiting for the collection row", async () => {
        const waiting = await adminQuery<{ n: number }>(
          "primary",
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND query ILIKE '%from "collections"%for key share%'`,
        );
        return waiting[0]?.n === 1;
      });
      // It holds none of the blocks, so the cascade can take them all.
      const blocks = await deleting.query("SELECT 1 FROM bm25_blocks WHERE collection_id = $1 FOR UPDATE NOWAIT", [
        collectionId,
      ]);
      expect(blocks.rowCount).toBe(2);
      await deleting.query("DELETE FROM collections WHERE id = $1", [collectionId]);
      await deleting.query("COMMIT");
      expect(await compaction).toEqual({ terms: 0, finished: true });
    } finally {
      await deleting.end();
    }
    expect(await adminQuery("primary", "SELECT 1 FROM bm25_blocks WHERE collection_id = $1", [collectionId])).toEqual(
      [],
    );
  });
});
