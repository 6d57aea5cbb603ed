import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appSender, memberQuery, type Send, startFailoverLoad } from "../../../harness/failover-load.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import type { App } from "../../../src/app.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
// The failover topology of its own: three Patroni members (pg3 never fails over), etcd, HAProxy.
const DIR = "/var/tmp/pgrag/failover-test";
const PORT = 55832;
const env = { ...process.env, PGRAG_CLUSTER_DIR: DIR, PGRAG_PG_PORT: String(PORT), PGRAG_PGBOUNCER_PORT: "56832" };
const cluster = async (...args: string[]) =>
  (await run("bash", [`${ROOT}/replicas/cluster.sh`, ...args], { env })).stdout.trim();
const MEMBERS = ["pg1", "pg2", "pg3"];
const memberPort = (name: string) => PORT + Number(name.slice(2)) - 1;
/** After a crash a new leader needs the lease's 10 s; this leaves room for a busy machine. */
const RECOVERY_DEADLINE_MS = 120_000;

const admin = <R extends pg.QueryResultRow>(member: string, text: string, values: unknown[] = []) =>
  memberQuery<R>(`${DIR}/sock`, memberPort(member), text, values);

let app: App;

/** Requests as a new tenant of its own (each case's writes stay far below the collections quota). */
async function newTenant(): Promise<{ tenantId: string; send: Send }> {
  const { tenantId, key } = await newTenantKey(app);
  return { tenantId, send: appSender(app, key) };
}

beforeAll(async () => {
  await cluster("down").catch(() => undefined);
  await rm(DIR, { recursive: true, force: true });
  await cluster("up", "--ha", "--replicas", "2");
  await run("node", [`${ROOT}/bin/pgrag.js`, "migrate"], {
    env: { ...env, PGRAG_ENV_FILE: `${DIR}/cluster.env`, PGRAG_LOG_LEVEL: "silent" },
  });
  app = await startTestApp({
    PGRAG_ENV_FILE: `${DIR}/cluster.env`,
    // The load is one tenant's, faster than a key's default allowance.
    PGRAG_RATE_LIMIT_PER_SECOND: "100000",
    PGRAG_RATE_LIMIT_BURST: "100000",
    PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "100000",
  });
}, 300_000);

afterAll(async () => {
  await app?.stop();
  for (const member of MEMBERS) await cluster("fault", "thaw", member).catch(() => undefined);
  await cluster("down").catch(() => undefined);
  await rm(DIR, { recursive: true, force: true });
}, 120_000);

/**
 * The load runs through a fault until writes have resumed on a new primary; then the old primary is
 * brought back (`recover`), and every acknowledged write must be on the new primary, every token read
 * must have seen its write, and the old primary must rejoin as a replica and catch up.
 */
async function throughFault(inject: (leader: string) => Promise<void>, recover: (old: string) => Promise<void>) {
  const oldLeader = await cluster("leader");
  // The owner's pooled connections may still point at a primary of before the last case.
  const { tenantId, send } = await waitFor("a new tenant", () => newTenant());
  const load = startFailoverLoad(send, { readers: 2 });
  await waitFor("writes before the fault", () => load.acknowledgedCount() >= 5);
  await inject(oldLeader);
  const before = load.acknowledgedCount();
  const newLeader = await waitFor(
    "writes to resume on a new primary",
    async () => {
      const leader = await cluster("leader");
      return leader && leader !== oldLeader && load.acknowledgedCount() >= before + 5 ? leader : undefined;
    },
    RECOVERY_DEADLINE_MS,
  );
  await recover(oldLeader);
  const result = await load.stop();

  const stored = new Set(
    (await admin<{ name: string }>(newLeader, "SELECT name FROM collections WHERE tenant_id = $1", [tenantId])).map(
      (r) => r.name,
    ),
  );
  const lost = [...result.acknowledged, ...result.appliedWithoutAnswer].filter((name) => !stored.has(name));
  expect(lost, "acknowledged writes missing on the new primary").toEqual([]);
  expect(result.unresolved).toEqual([]);
  expect(result.tokenReads.missedTheirWrite, "token reads that did not see their write").toBe(0);
  expect(result.tokenReads.ok).toBeGreaterThan(0);
  // Never in pg3: it is tagged nofailover.
  expect(MEMBERS.slice(0, 2)).toContain(newLeader);

  await waitFor(
    `${oldLeader} to rejoin as a replica of ${newLeader} and catch up`,
    async () => {
      const [primary] = await admin<{ lsn: string }>(newLeader, "SELECT pg_current_wal_lsn()::text AS lsn");
      const [replica] = await admin<{ caught_up: boolean }>(
        oldLeader,
        `SELECT pg_is_in_recovery() AND (SELECT status FROM pg_stat_wal_receiver) = 'streaming'
                AND pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up`,
        [primary?.lsn],
      );
      return replica?.caught_up;
    },
    RECOVERY_DEADLINE_MS,
  );
  return result;
}

describe("failover under load (Patroni, etcd, HAProxy)", () => {
  it("a graceful switchover loses no acknowledged write", async () => {
    const result = await throughFault(
      async () => void (await cluster("fault", "switchover")),
      async () => undefined,
    );
    expect(result.acknowledged.length).toBeGreaterThan(10);
  }, 300_000);

  it("a killed primary (Patroni and postmaster, SIGKILL) loses no acknowledged write and rejoins after pg_rewind", async () => {
    await throughFault(
      async (leader) => void (await cluster("fault", "kill", leader)),
      async (old) => void (await cluster("start-node", old)),
    );
  }, 300_000);

  it("a primary frozen past its lease (SIGSTOP) is replaced, and demotes itself when it resumes", async () => {
    await throughFault(
      async (leader) => void (await cluster("fault", "freeze", leader)),
      async (old) => void (await cluster("fault", "thaw", old)),
    );
  }, 300_000);
});
