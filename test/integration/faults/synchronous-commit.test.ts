import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sql } from "kysely";
import pg from "pg";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { loadConfig } from "../../../src/config.ts";
import { UnavailableError } from "../../../src/errors.ts";
import { createLogger } from "../../../src/logger.ts";
import { createTopology, type Topology } from "../../../src/startup/topology.ts";
import { TRACING_OFF } from "../../../src/tracing.ts";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../../replicas/cluster.sh", import.meta.url));
// A primary and one standby of their own: the primary is made to wait for that standby.
const DIR = "/var/tmp/pgrag/sync-test";
const PORT = 55732;
const env = { ...process.env, PGRAG_CLUSTER_DIR: DIR, PGRAG_PG_PORT: String(PORT), PGRAG_PGBOUNCER_PORT: "56732" };
const cluster = (...args: string[]) => run("bash", [SCRIPT, ...args], { env });

async function admin<R extends pg.QueryResultRow>(text: string): Promise<R[]> {
  const client = new pg.Client({ host: `${DIR}/sock`, port: PORT, user: "postgres", database: "pgrag" });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

let topology: Topology;
beforeAll(async () => {
  await rm(DIR, { recursive: true, force: true });
  await cluster("up", "--replicas", "1");
  // Every commit waits for replica1 (its walreceiver names itself after cluster_name); then it stops.
  await admin(`ALTER SYSTEM SET synchronous_standby_names = '"pgrag-replica1"'`);
  await admin("SELECT pg_reload_conf()");
  await cluster("stop-node", "replica1");
  const config = loadConfig({ PGRAG_ENV_FILE: `${DIR}/cluster.env`, PGRAG_LOG_LEVEL: "silent" });
  topology = createTopology(config, createLogger({ logLevel: "silent" }), new Registry(), TRACING_OFF);
  await topology.monitor.probeAll(true);
}, 120_000);

afterAll(async () => {
  await topology?.close();
  await cluster("down").catch(() => undefined);
  await rm(DIR, { recursive: true, force: true });
});

describe("a commit its synchronous standby did not confirm", () => {
  it("is reported as not acknowledged (503, outcome unknown), never as a success", async () => {
    let xid = "";
    const write = topology.router
      .write({}, async (tx) => {
        // Something written (a commit that wrote nothing waits for no standby), by the app's role.
        await sql`CREATE TEMP TABLE probe (n int) ON COMMIT DROP`.execute(tx);
        const { rows } = await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(tx);
        xid = rows[0]?.xid ?? "";
      })
      .then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    // The COMMIT waits for the standby that is down; cancelling the wait is what an operator, a
    // statement timeout or a failing-over primary does.
    const [waiting] = await waitFor("the commit to wait for its synchronous standby", async () => {
      const rows = await admin<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
      return rows.length > 0 ? rows : undefined;
    });
    await admin(`SELECT pg_cancel_backend(${Number(waiting?.pid)})`);
    const outcome = await write;
    expect(outcome.ok).toBe(false);
    const error = outcome.ok ? undefined : outcome.error;
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).message).toMatch(/not acknowledged.*synchronous standby.*outcome is unknown/);
    // Why "unknown": the primary did commit it, where only the standby's confirmation was missing.
    const [status] = await admin<{ status: string }>(`SELECT pg_xact_status('${xid}'::xid8) AS status`);
    expect(status?.status).toBe("committed");
  });

  it("lets writes succeed again once the standby is back", async () => {
    await cluster("start-node", "replica1");
    const { token } = await topology.router.write({}, async (tx) => {
      await sql`CREATE TEMP TABLE probe (n int) ON COMMIT DROP`.execute(tx);
    });
    expect(token.lsn).toBeGreaterThan(0n);
    expect(token.timeline).toBe(1);
  });
});
