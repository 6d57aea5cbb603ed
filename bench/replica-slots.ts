import { type Kysely, sql } from "kysely";
import type { Database } from "../src/db/database.ts";
import { waitFor } from "../harness/wait-for.ts";

/**
 * Waits until no replica can still see rows deleted before now. With hot_standby_feedback a replica's
 * oldest snapshot holds its slot's xmin back (it moves only when the replica reports, every few
 * seconds), and VACUUM keeps every row such a snapshot may see: run at once, it leaves the deleted
 * rows to a later autovacuum, which does the work (for chunks, pgvector's repair of the HNSW graph
 * around each deleted element) in the middle of whatever is measured next.
 */
export async function replicasReleaseDeletedRows(db: Kysely<Database>): Promise<void> {
  const { rows } = await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(db);
  const now = rows[0]?.xid ?? "0";
  await waitFor(
    "every replication slot's xmin to pass the deletion (is a replica down?)",
    async () => {
      const { rows: slots } = await sql<{ released: boolean }>`
        SELECT coalesce(bool_and(xmin IS NULL OR age(xmin) <= age(xid(${now}::xid8))), true) AS released
        FROM pg_replication_slots
      `.execute(db);
      return slots[0]?.released;
    },
    15 * 60_000,
  );
}

/**
 * Deletes earlier runs' tenants (names matching the LIKE pattern) and vacuums what they leave, once
 * no replica can still see it: their vectors would otherwise stay in the shared HNSW graph (taking
 * places in every walk's candidate list) and their postings in the blocks, and autovacuum would do
 * the graph's repair in the middle of whatever is measured next. `db` is the schema owner's.
 */
export async function dropBenchTenants(db: Kysely<Database>, namePattern: string): Promise<void> {
  await sql`DELETE FROM tenants WHERE name LIKE ${namePattern}`.execute(db);
  await replicasReleaseDeletedRows(db);
  await sql`VACUUM (ANALYZE) chunks, bm25_blocks, bm25_deletions, documents`.execute(db);
}
