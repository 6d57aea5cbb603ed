import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminQuery, clusterUrls, TEST_CLUSTER } from "../../helpers/cluster.ts";
import { dockerReachable, readTopologyState, selectTopology } from "../../helpers/topology.ts";

// Straight pg clients through PgBouncer: this checks the topology itself, below the app's router.
const urls = clusterUrls();
const replicaUrls = (urls.PGRAG_REPLICA_URLS ?? "").split(",").filter(Boolean);
const primary = new pg.Pool({ connectionString: urls.PGRAG_PRIMARY_URL, max: 2 });
const replicas = replicaUrls.map((url) => new pg.Pool({ connectionString: url, max: 2 }));
afterAll(async () => {
  await Promise.all([primary, ...replicas].map((p) => p.end()));
});

/** Runs one statement in a transaction with the tenant set, as row-level security requires. */
async function asTenant(pool: pg.Pool, tenantId: string, text: string, values: unknown[]) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT set_config('pgrag.tenant_id', $1, true)", [tenantId]);
    const { rows } = await client.query(text, values);
    await client.query("COMMIT");
    return rows;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

describe("native topology", () => {
  it("has two replicas behind PgBouncer, each in recovery, and a primary that is not", async () => {
    expect(replicas).toHaveLength(2);
    const { rows } = await primary.query("SELECT pg_is_in_recovery() AS r");
    expect(rows[0].r).toBe(false);
    for (const replica of replicas) {
      const { rows: replicaRows } = await replica.query("SELECT pg_is_in_recovery() AS r");
      expect(replicaRows[0].r).toBe(true);
    }
  });

  it("streams a row written through PgBouncer to the primary to every replica", async () => {
    const id = randomUUID();
    const name = `topology-${id}`;
    // The tenant by the superuser (the app role writes no tenants); the row by the app, through PgBouncer.
    await adminQuery("primary", "INSERT INTO tenants (id, name) VALUES ($1, $2)", [id, name]);
    await asTenant(primary, id, "INSERT INTO collections (tenant_id, name) VALUES ($1, $2)", [id, "rows"]);
    for (const replica of replicas) {
      const seen = await waitFor("the row on the replica", async () => {
        const r = await asTenant(
          replica,
          id,
          "SELECT t.name FROM collections c JOIN tenants t ON t.id = c.tenant_id WHERE c.tenant_id = $1",
          [id],
        );
        return r[0]?.name as string | undefined;
      });
      expect(seen).toBe(name);
    }
  });

  it("refuses writes on a replica", async () => {
    for (const replica of replicas) {
      await expect(
        replica.query("INSERT INTO collections (tenant_id, name) VALUES ($1, $2)", [randomUUID(), "nope"]),
      ).rejects.toMatchObject({
        code: "25006", // read_only_sql_transaction
      });
    }
  });

  it("keeps the replicas on replication slots with hot_standby_feedback", async () => {
    const { rows } = await primary.query<{ slot_name: string; active: boolean }>(
      "SELECT slot_name, active FROM pg_replication_slots ORDER BY slot_name",
    );
    expect(rows).toEqual([
      { slot_name: "replica1_slot", active: true },
      { slot_name: "replica2_slot", active: true },
    ]);
    for (const replica of replicas) {
      const { rows: setting } = await replica.query("SHOW hot_standby_feedback");
      expect(setting[0].hot_standby_feedback).toBe("on");
    }
  });
});

describe("the topology this run chose", () => {
  it("is the one selection picks on this machine", async () => {
    const expected = await selectTopology(process.env.PGRAG_TEST_TOPOLOGY, dockerReachable);
    expect(readTopologyState(TEST_CLUSTER).kind).toBe(expected);
  });
});
