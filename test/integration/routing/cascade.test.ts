import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { nodeStates, startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminQuery, cluster, nodePort, restoreTopology } from "../../helpers/cluster.ts";
import { readCollectionRow, writeCollectionRow } from "../../helpers/routed-rows.ts";

/**
 * Cascading replication: replica3 streams from replica1, not from the primary. The router knows
 * nothing of the cascade: it compares each replica's own replay position with a read's token, so a
 * cascaded replica serves a token read only once it has replayed past the token, whatever holds it back.
 */
const tenantId = randomUUID();

beforeAll(async () => {
  await cluster("up", "--replicas", "3", "--cascade");
  await adminQuery("primary", "INSERT INTO tenants (id, name) VALUES ($1, $2)", [tenantId, `cascade-${tenantId}`]);
});

afterAll(async () => {
  await restoreTopology();
  await cluster("up", "--replicas", "2"); // replica3 and its slot on replica1 are removed
});

afterEach(async () => {
  await restoreTopology();
  await adminQuery("replica1", "SELECT pg_wal_replay_resume()");
});

async function writeThenRead(app: App) {
  const { id, token } = await writeCollectionRow(app, tenantId);
  const read = await readCollectionRow(app, tenantId, id, token);
  return { id, token, seen: read.value?.id === id, node: read.node };
}

/** A generous lag bound keeps stalled replicas in rotation: only the token check may keep them out. */
const startApp = () => startTestApp({ PGRAG_MAX_REPLICA_LAG_MS: "600000", PGRAG_CONSISTENCY_WAIT_MS: "100" });

describe("a cascaded replica", () => {
  it("streams from replica1 and is in the router's rotation", async () => {
    const [receiver] = await adminQuery<{ sender_port: number; status: string }>(
      "replica3",
      "SELECT sender_port, status FROM pg_stat_wal_receiver",
    );
    expect(receiver).toEqual({ sender_port: nodePort("replica1"), status: "streaming" });
    const app = await startApp();
    expect(Object.keys(await nodeStates(app))).toEqual(["primary", "replica1", "replica2", "replica3"]);
    const served = new Set<string>();
    await waitFor("a read served by replica3", async () => {
      served.add((await app.router.read({}, (db) => sql`SELECT 1`.execute(db))).node);
      return served.has("replica3");
    });
  });

  it("stalled by its stopped upstream, serves no token read until it has replayed past the token", async () => {
    const app = await startApp();
    await cluster("stop-node", "replica1");
    const servedBy = new Map<string, number>();
    let last = await writeThenRead(app);
    for (let round = 0; round < 60; round++) {
      last = await writeThenRead(app);
      expect(last.seen, `round ${round} on ${last.node}`).toBe(true);
      servedBy.set(last.node, (servedBy.get(last.node) ?? 0) + 1);
    }
    expect(servedBy.get("replica3")).toBeUndefined();
    expect(servedBy.get("replica2") ?? 0).toBeGreaterThan(0);
    // In rotation all along: reads without a token still reach it, so the token check kept it out.
    const tokenless = new Set<string>();
    for (let i = 0; i < 100 && !tokenless.has("replica3"); i++) {
      tokenless.add((await app.router.read({}, (db) => sql`SELECT 1`.execute(db))).node);
    }
    expect(tokenless.has("replica3")).toBe(true);

    await cluster("start-node", "replica1");
    // Once the cascade flows again, replica3 catches up and serves reads with the last token.
    await waitFor("a token read served by replica3", async () => {
      const read = await readCollectionRow(app, tenantId, last.id, last.token);
      expect(read.value?.id).toBe(last.id);
      return read.node === "replica3";
    });
  });

  it("keeps streaming while replay is paused on its upstream (the upstream forwards what it received)", async () => {
    const app = await startApp();
    await adminQuery("replica1", "SELECT pg_wal_replay_pause()");
    const servedBy = new Map<string, number>();
    for (let round = 0; round < 100; round++) {
      const result = await writeThenRead(app);
      expect(result.seen, `round ${round} on ${result.node}`).toBe(true);
      servedBy.set(result.node, (servedBy.get(result.node) ?? 0) + 1);
    }
    expect(servedBy.get("replica1")).toBeUndefined();
    expect(servedBy.get("replica3") ?? 0).toBeGreaterThan(0);
  });
});
