import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import type { ConsistencyToken } from "../../../src/db/consistency-token.ts";
import { UnavailableError } from "../../../src/errors.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { nodeStates, startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminQuery, cluster, restoreTopology } from "../../helpers/cluster.ts";
import { readCollectionRow, writeCollectionRow } from "../../helpers/routed-rows.ts";

/** This file's tenant, created once by the superuser: the app role writes no tenants. */
let fileTenant: Promise<string> | undefined;
function routerTenant(): Promise<string> {
  fileTenant ??= (async () => {
    const id = randomUUID();
    await adminQuery("primary", "INSERT INTO tenants (id, name) VALUES ($1, $2)", [id, `router-${id}`]);
    return id;
  })();
  return fileTenant;
}

/** A write: a new collection row of the file's tenant, under row-level security. */
const insertRow = async (app: App) => writeCollectionRow(app, await routerTenant());

const readRow = async (app: App, id: string, token: ConsistencyToken | null) =>
  readCollectionRow(app, await routerTenant(), id, token);

const whereServed = (app: App) => app.router.read({}, (db) => sql`SELECT 1`.execute(db)).then((r) => r.node);

// Every test leaves the topology whole, even when it fails half-way.
afterEach(async () => {
  await restoreTopology();
  await adminQuery("replica1", "SELECT pg_wal_replay_resume()");
});

describe("read-your-writes", () => {
  it("200 write-then-read rounds with the token always see the write, never on the paused replica", async () => {
    // A generous lag bound keeps the paused replica in rotation for reads without a token.
    const app = await startTestApp({ PGRAG_MAX_REPLICA_LAG_MS: "600000", PGRAG_CONSISTENCY_WAIT_MS: "100" });
    // Injected: WAL replay paused on replica1, so it falls behind every write from now on.
    await adminQuery("replica1", "SELECT pg_wal_replay_pause()");
    const servedBy = new Map<string, number>();
    for (let round = 0; round < 200; round++) {
      const { id, token } = await insertRow(app);
      const read = await readRow(app, id, token);
      expect(read.value?.id, `round ${round} on ${read.node}`).toBe(id);
      servedBy.set(read.node, (servedBy.get(read.node) ?? 0) + 1);
    }
    expect(servedBy.get("replica1")).toBeUndefined();
    // The healthy replica serves most of them; the primary only when replica2 had not caught up in time.
    expect(servedBy.get("replica2") ?? 0).toBeGreaterThan(0);

    const tokenless = new Set<string>();
    for (let i = 0; i < 100; i++) tokenless.add(await whereServed(app));
    expect(tokenless.has("replica1")).toBe(true);
    expect(tokenless.has("primary")).toBe(false);
  });

  it("takes a replica beyond the lag bound out of rotation for reads without a token", async () => {
    const app = await startTestApp({ PGRAG_MAX_REPLICA_LAG_MS: "200" });
    await adminQuery("replica1", "SELECT pg_wal_replay_pause()");
    await insertRow(app);
    // replica2 within the bound too: still replaying an earlier test file's writes, it would be out
    // of rotation as well and the primary would rightly serve (seen once in CI).
    await waitFor("replica1 marked lagging, replica2 up", async () => {
      await insertRow(app); // keep the primary moving so the lag is real
      const states = await nodeStates(app);
      return states.replica1 === "lagging" && states.replica2 === "up";
    });
    for (let i = 0; i < 50; i++) expect(await whereServed(app)).toBe("replica2");
    await adminQuery("replica1", "SELECT pg_wal_replay_resume()");
    await waitFor("replica1 back in rotation", async () => (await nodeStates(app)).replica1 === "up");
  });
});

describe("client-controlled tokens", () => {
  it("a token ahead of the primary (forged) is clamped: reads still go to replicas, through the API too", async () => {
    const app = await startTestApp();
    const { id } = await insertRow(app);
    const forged = { lsn: 0xffffffffffffffffn, timeline: null };
    const served = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const read = await waitFor("the row on a replica", async () => {
        const r = await readRow(app, id, forged);
        return r.value ? r : undefined;
      });
      served.add(read.node);
    }
    expect([...served].every((node) => node.startsWith("replica"))).toBe(true);
    // The platform's own reads that need the primary ask for it explicitly, and get it.
    expect((await app.router.read({ primary: true }, (db) => sql`SELECT 1`.execute(db))).node).toBe("primary");
    // The HTTP API takes the same token from the header.
    const { key } = await newTenantKey(app);
    await api(app, "POST", "/v1/collections", { key, json: { name: "forged" } });
    const response = await waitFor("the collection on a replica", async () => {
      const r = await api(app, "POST", "/v1/search", {
        key,
        token: "FFFFFFFF/FFFFFFFF",
        json: { collection: "forged", query: "anything" },
      });
      return r.status === 200 ? r : undefined;
    });
    expect(response.headers.get("X-Served-By")).toMatch(/^replica/);
  });
});

describe("failures", () => {
  it("a replica stopped during a read loop fails no read, leaves rotation and returns after restart", async () => {
    const app = await startTestApp();
    let stop = false;
    const failures: unknown[] = [];
    const served = new Map<string, number>();
    const loop = async () => {
      while (!stop) {
        try {
          const node = await whereServed(app);
          served.set(node, (served.get(node) ?? 0) + 1);
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const loops = Promise.all([loop(), loop(), loop(), loop()]);
    try {
      await waitFor("reads on replica2", () => (served.get("replica2") ?? 0) > 20);
      // Injected: replica2 stopped (fast shutdown) while four loops read.
      await cluster("stop-node", "replica2");
      await waitFor("replica2 out of rotation", async () => (await nodeStates(app)).replica2 === "down");
      const servedWhileDown = served.get("replica2") ?? 0;
      await waitFor("reads go on without replica2", () => (served.get("replica1") ?? 0) > servedWhileDown + 50);
      expect(served.get("replica2") ?? 0).toBe(servedWhileDown);
      await cluster("start-node", "replica2");
      await waitFor(
        "replica2 back in rotation and serving",
        () => (served.get("replica2") ?? 0) > servedWhileDown + 20,
        30_000,
      );
    } finally {
      stop = true;
      await loops;
    }
    expect(failures).toEqual([]);
  });

  it("with every replica down, reads go to the primary", async () => {
    const app = await startTestApp();
    await cluster("stop-node", "replica1");
    await cluster("stop-node", "replica2");
    for (let i = 0; i < 20; i++) expect(await whereServed(app)).toBe("primary");
    const { id, token } = await insertRow(app);
    expect((await readRow(app, id, token)).node).toBe("primary");
  });

  it("with the primary down, writes fail fast with 'unavailable' and reads continue on the replicas", async () => {
    const app = await startTestApp();
    await routerTenant(); // before the primary goes away
    // Injected: primary stopped (fast shutdown).
    await cluster("stop-node", "primary");
    await expect(insertRow(app)).rejects.toBeInstanceOf(UnavailableError);
    // Once the breaker is open, later writes are refused without touching the network.
    await expect(insertRow(app)).rejects.toMatchObject({ code: "unavailable", retryAfterSeconds: 2 });
    const nodes = new Set<string>();
    for (let i = 0; i < 20; i++) nodes.add(await whereServed(app));
    expect([...nodes].sort()).toEqual(["replica1", "replica2"]);
    await cluster("start-node", "primary");
    await waitFor("writes accepted again", () => insertRow(app).then(() => true));
  });

  it("applies a read's local settings with its tenant, and leaks none to other clients of the same PgBouncer pool", async () => {
    const app = await startTestApp({ PGRAG_POOL_SIZE: "4" });
    const tenantId = randomUUID();
    const current = (db: Parameters<Parameters<typeof app.router.read>[1]>[0]) =>
      sql<{ ef: string | null; tenant: string | null }>`
        SELECT current_setting('hnsw.ef_search', true) AS ef, current_setting('pgrag.tenant_id', true) AS tenant
      `.execute(db);
    for (let i = 0; i < 20; i++) {
      const inside = await app.router.read({ tenantId, settings: { "hnsw.ef_search": "123" } }, current);
      expect(inside.value.rows[0]).toEqual({ ef: "123", tenant: tenantId });
      const { value } = await app.router.read({}, current);
      expect(value.rows[0]?.ef).not.toBe("123");
      expect(value.rows[0]?.tenant || null).toBeNull();
    }
    // Settings travel as escaped literals (BEGIN and set_config share one simple-protocol query):
    // a hostile value arrives as itself and runs nothing.
    const hostile = "x', false); DROP TABLE tenants; --\\";
    const { value } = await app.router.read({ settings: { "pgrag.probe": hostile } }, (db) =>
      sql<{ probe: string }>`SELECT current_setting('pgrag.probe') AS probe`.execute(db),
    );
    expect(value.rows[0]?.probe).toBe(hostile);
    await expect(app.router.read({}, (db) => sql`SELECT count(*) FROM tenants`.execute(db))).resolves.toBeDefined();
  });
});
