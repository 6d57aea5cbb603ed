/**
 * `npm run bench:failover [BENCH_FAILOVER_ROUNDS=2]`: the failover topology (Patroni, etcd, HAProxy;
 * PGRAG_TOPOLOGY=ha) under a bounded writer (collections created with idempotency keys, each read
 * back with its token) and two readers without tokens, while the primary is (a) switched over, (b)
 * killed (SIGKILL of Patroni and the postmaster) and (c) frozen past its leader lease (SIGSTOP). Per
 * case: acknowledged writes, ambiguous attempts, writes applied without an answer, writes lost, the
 * longest write outage, reads failed, token reads that missed their write, and reads served by a
 * node on an old timeline (from a sampler of every member's role and timeline).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  appSender,
  type FailoverLoadResult,
  memberQuery,
  readsOnOldTimelines,
  sampleTimelines,
  startFailoverLoad,
} from "../harness/failover-load.ts";
import { waitFor } from "../harness/wait-for.ts";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { createApiKey, ensureTenant } from "../src/tenancy/api-keys.ts";

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_FAILOVER_ROUNDS ?? 2);
const DIR = process.env.PGRAG_CLUSTER_DIR ?? "/var/tmp/pgrag/ha";
const PORT = Number(process.env.PGRAG_PG_PORT ?? 5533);
const TTL_S = Number(process.env.PGRAG_HA_TTL ?? 10);
const LOOP_WAIT_S = Number(process.env.PGRAG_HA_LOOP_WAIT ?? 2);
const MEMBERS = ["pg1", "pg2", "pg3"].map((name, i) => ({ name, port: PORT + i }));
const cluster = async (...args: string[]) => (await run("bash", ["replicas/cluster.sh", ...args])).stdout.trim();
const portOf = (member: string) => MEMBERS.find((m) => m.name === member)?.port ?? PORT;

const config = loadConfig({
  ...process.env,
  PGRAG_LOG_LEVEL: "silent",
  PGRAG_WORKER_CONCURRENCY: "0",
  PGRAG_RATE_LIMIT_PER_SECOND: "1000000",
  PGRAG_RATE_LIMIT_BURST: "1000000",
  PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "1000000",
});
const app = createApp(config, { logger: createLogger({ logLevel: "silent" }) });
await app.start({ listen: false });

interface Case {
  readonly name: string;
  readonly outageTargetS: number;
  inject(leader: string): Promise<void>;
  recover(old: string): Promise<void>;
}
const CASES: Case[] = [
  {
    name: "switchover",
    outageTargetS: 10,
    inject: async () => void (await cluster("fault", "switchover")),
    recover: async () => undefined,
  },
  {
    name: "SIGKILL",
    outageTargetS: TTL_S + LOOP_WAIT_S + 10,
    inject: async (leader) => void (await cluster("fault", "kill", leader)),
    recover: async (old) => void (await cluster("start-node", old)),
  },
  {
    name: "SIGSTOP",
    outageTargetS: TTL_S + LOOP_WAIT_S + 10,
    inject: async (leader) => void (await cluster("fault", "freeze", leader)),
    recover: async (old) => void (await cluster("fault", "thaw", old)),
  },
];

async function measure(c: Case): Promise<Record<string, string | number>> {
  // A tenant per case (its writes stay below the collections quota); the owner's pool may still
  // hold connections to the primary of before, so the first attempts may fail.
  const { tenantId, key } = await waitFor("a new tenant", () =>
    adminTransaction(app, async (tx) => {
      const id = await ensureTenant(tx, `failover-${crypto.randomUUID()}`);
      return { tenantId: id, ...(await createApiKey(tx, { tenantId: id, name: "bench", scopes: ["read", "write"] })) };
    }),
  );
  const oldLeader = await cluster("leader");
  const sampler = sampleTimelines(MEMBERS, `${DIR}/sock`);
  const load = startFailoverLoad(appSender(app, key), { readers: 2 });
  await waitFor("writes before the fault", () => load.acknowledgedCount() >= 50, 60_000);
  await c.inject(oldLeader);
  const before = load.acknowledgedCount();
  const newLeader = await waitFor(
    "writes on a new primary",
    async () => {
      const leader = await cluster("leader");
      return leader && leader !== oldLeader && load.acknowledgedCount() >= before + 50 ? leader : undefined;
    },
    180_000,
  );
  await c.recover(oldLeader);
  const result: FailoverLoadResult = await load.stop();
  const samples = await sampler.stop();
  const stored = new Set(
    (
      await memberQuery<{ name: string }>(
        `${DIR}/sock`,
        portOf(newLeader),
        "SELECT name FROM collections WHERE tenant_id = $1",
        [tenantId],
      )
    ).map((r) => r.name),
  );
  const lost = [...result.acknowledged, ...result.appliedWithoutAnswer].filter((n) => !stored.has(n)).length;
  return {
    case: c.name,
    "acknowledged writes": result.acknowledged.length,
    "ambiguous attempts": result.ambiguousAttempts,
    "applied, answer lost": result.appliedWithoutAnswer.length,
    "retries replayed": result.replayed,
    "writes lost (0)": lost,
    [`longest write outage s (≤ ${c.outageTargetS})`]: (result.longestWriteGap.ms / 1000).toFixed(1),
    "reads ok": result.reads.ok,
    "reads failed (0)": result.reads.failed,
    "token reads missed their write (0)": result.tokenReads.missedTheirWrite,
    "token reads failed": result.tokenReads.failed,
    "reads on an old timeline (0)": readsOnOldTimelines(result.served, samples),
    "old → new leader": `${oldLeader} → ${newLeader}`,
  };
}

const rows: Record<string, string | number>[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const c of CASES) {
    const row = { round, ...(await measure(c)) };
    console.log(JSON.stringify(row));
    rows.push(row);
  }
}
console.table(rows);
await app.stop();
