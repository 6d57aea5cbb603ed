/**
 * `npm run loadtest:scaling`: read throughput with 2, 1 and 0 replicas on the native topology.
 *
 * Every database node gets the same CPU cap (cgroup v1 cpu.cfs_quota_us, as root) so that the
 * databases, not the load generator, are the bottleneck on this small machine. For each replica
 * count, search load steps up until p95 passes the SLO (or errors or dropped iterations appear);
 * the highest step that held is the sustained rate. A mixed read-your-writes scenario runs alongside
 * and counts violations. Prints a table and writes loadtest-results/scaling.{json,svg}.
 * Its own cluster (PGRAG_CLUSTER_DIR=/var/tmp/pgrag/scaling, ports 45432+ / 46432); stops by itself.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { loadBeirCollection } from "../src/evaluation/beir.ts";
import { createLogger } from "../src/logger.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { runScenarios } from "./runner.ts";

const CLUSTER = { PGRAG_CLUSTER_DIR: "/var/tmp/pgrag/scaling", PGRAG_PG_PORT: "45432", PGRAG_PGBOUNCER_PORT: "46432" };
const CPU_QUOTA = Number(process.env.SCALING_CPU_QUOTA ?? 0.25); // CPUs per database node
const SLO_P95_MS = Number(process.env.SCALING_SLO_P95_MS ?? 250);
const STEP_SECONDS = Number(process.env.SCALING_STEP_SECONDS ?? 8);
const RATES = (process.env.SCALING_RATES ?? "10,20,30,45,60,80,100,130,170").split(",").map(Number);
const DOCUMENTS = Number(process.env.SCALING_DOCUMENTS ?? 1000);
const CLUSTER_SCRIPT = fileURLToPath(new URL("../replicas/cluster.sh", import.meta.url));
const OUT = "loadtest-results";

const cluster = (...args: string[]) =>
  execFileSync("bash", [CLUSTER_SCRIPT, ...args], { env: { ...process.env, ...CLUSTER }, encoding: "utf8" });

/** Puts a node's postmaster and all its processes in a cgroup of its own with the CPU quota. */
function capNode(node: string): boolean {
  const root = "/sys/fs/cgroup/cpu";
  const group = `${root}/pgrag-scaling-${node}`;
  try {
    if (!existsSync(group)) mkdirSync(group);
    writeFileSync(`${group}/cpu.cfs_period_us`, "100000");
    writeFileSync(`${group}/cpu.cfs_quota_us`, String(Math.round(CPU_QUOTA * 100_000)));
    const postmaster = Number(
      readFileSync(`${CLUSTER.PGRAG_CLUSTER_DIR}/${node}/postmaster.pid`, "utf8").split("\n")[0],
    );
    const pids = [postmaster];
    for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
      try {
        const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
        if (ppid === postmaster) pids.push(Number(entry));
      } catch {
        // the process ended meanwhile
      }
    }
    // New backends are forked by the postmaster and inherit its group.
    for (const pid of pids) writeFileSync(`${group}/cgroup.procs`, String(pid));
    return true;
  } catch (error) {
    console.warn(`could not cap ${node} (${(error as Error).message}); it runs uncapped`);
    return false;
  }
}

interface Step {
  rate: number;
  achieved: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  dropped: number;
  held: boolean;
}

async function measure(replicas: number, apiKey: string) {
  cluster("up", "--replicas", String(replicas));
  const nodes = ["primary", ...Array.from({ length: replicas }, (_, i) => `replica${i + 1}`)];
  const capped = nodes.map(capNode).every(Boolean);
  cluster("restart-pgbouncer"); // pooled server connections are re-forked inside the caps
  const config = loadConfig({
    PGRAG_ENV_FILE: `${CLUSTER.PGRAG_CLUSTER_DIR}/cluster.env`,
    PGRAG_LOG_LEVEL: "warn",
    PGRAG_PORT: "0",
    PGRAG_POOL_SIZE: "24",
    PGRAG_RATE_LIMIT_PER_SECOND: "1000000",
    PGRAG_RATE_LIMIT_BURST: "1000000",
    PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "1000000",
  });
  const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
  await app.start();
  const baseUrl = `http://127.0.0.1:${app.port()}`;
  const readsBefore = await readsPerNode(app);
  const steps: Step[] = [];
  let maxLagMs = 0;
  let violations = 0;
  const lagTimer = setInterval(() => {
    for (const h of app.monitor.snapshot())
      if (h.role === "replica" && h.lagMs !== null && Number.isFinite(h.lagMs)) maxLagMs = Math.max(maxLagMs, h.lagMs);
  }, 200);
  for (const rate of RATES) {
    const [search, mixed] = await Promise.all([
      runScenarios({
        baseUrl,
        apiKey,
        scenarios: ["search"],
        collection: "scifact",
        rateScale: rate / 50,
        duration: `${STEP_SECONDS}s`,
      }),
      runScenarios({
        baseUrl,
        apiKey,
        scenarios: ["mixed"],
        collection: "ryw",
        rateScale: 0.2,
        duration: `${STEP_SECONDS}s`,
      }),
    ]);
    violations += mixed.metrics.ryw_violations?.count ?? 0;
    const d = search.metrics["http_req_duration{endpoint:search}"] ?? {};
    const step: Step = {
      rate,
      achieved: search.metrics["http_reqs{endpoint:search}"]?.rate ?? 0,
      p50: d.med ?? 0,
      p95: d["p(95)"] ?? 0,
      p99: d["p(99)"] ?? 0,
      errors: search.metrics.http_req_failed?.fails ?? 0,
      dropped: search.metrics.dropped_iterations?.count ?? 0,
      held: false,
    };
    step.held = step.p95 <= SLO_P95_MS && step.errors === 0 && step.dropped === 0;
    steps.push(step);
    console.log(
      `  replicas=${replicas} rate=${rate}/s → ${step.achieved.toFixed(1)} req/s p95 ${step.p95.toFixed(0)} ms${step.held ? "" : " (SLO missed)"}`,
    );
    if (!step.held) break;
  }
  clearInterval(lagTimer);
  const readsAfter = await readsPerNode(app);
  await app.stop();
  const share: Record<string, number> = {};
  const total = Object.keys(readsAfter).reduce((s, n) => s + (readsAfter[n] ?? 0) - (readsBefore[n] ?? 0), 0);
  for (const node of Object.keys(readsAfter))
    share[node] = ((readsAfter[node] ?? 0) - (readsBefore[node] ?? 0)) / Math.max(1, total);
  const best = [...steps].reverse().find((s) => s.held);
  return { replicas, capped, sustained: best?.achieved ?? 0, best, steps, share, maxLagMs, rywViolations: violations };
}

async function readsPerNode(app: ReturnType<typeof createApp>): Promise<Record<string, number>> {
  const metric = (await app.registry.getMetricsAsJSON()).find((m) => m.name === "pgrag_db_reads_total") as
    { values: { labels: { node: string }; value: number }[] } | undefined;
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) out[v.labels.node] = (out[v.labels.node] ?? 0) + v.value;
  return out;
}

/** Brings the topology up with two replicas and loads the SciFact documents; returns an API key. */
async function seed(): Promise<string> {
  cluster("up", "--replicas", "2");
  const env = { ...process.env, PGRAG_ENV_FILE: `${CLUSTER.PGRAG_CLUSTER_DIR}/cluster.env`, PGRAG_LOG_LEVEL: "warn" };
  execFileSync("node", [fileURLToPath(new URL("../bin/pgrag.js", import.meta.url)), "migrate"], { env });
  const app = createApp(loadConfig({ ...env, PGRAG_PORT: "0" }), { logger: createLogger({ logLevel: "warn" }) });
  await app.start({ listen: false });
  try {
    const { apiKey } = await loadBeirCollection(app, SCIFACT_DIR, (line) => console.log(line), { limit: DOCUMENTS });
    return apiKey;
  } finally {
    await app.stop();
  }
}

function chart(results: Awaited<ReturnType<typeof measure>>[]): string {
  const max = Math.max(1, ...results.map((r) => r.sustained));
  const bars = results
    .map((r, i) => {
      const h = (r.sustained / max) * 180;
      const x = 60 + i * 110;
      return `<rect x="${x}" y="${240 - h}" width="70" height="${h}" fill="#336699"/><text x="${x + 35}" y="${235 - h}" text-anchor="middle" font-size="13">${r.sustained.toFixed(0)}</text><text x="${x + 35}" y="260" text-anchor="middle" font-size="13">${r.replicas} replica${r.replicas === 1 ? "" : "s"}</text>`;
    })
    .join("");
  const width = Math.max(640, 100 + results.length * 110);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="290" font-family="sans-serif"><text x="20" y="20" font-size="14">Sustained search req/s at p95 ≤ ${SLO_P95_MS} ms (${CPU_QUOTA} CPU per database node)</text><line x1="50" y1="240" x2="${60 + results.length * 110}" y2="240" stroke="#333"/>${bars}</svg>\n`;
}

const apiKey = await seed();
const results = [];
for (const replicas of [2, 1, 0]) results.push(await measure(replicas, apiKey));
cluster("down");
results.reverse();
mkdirSync(OUT, { recursive: true });
writeFileSync(`${OUT}/scaling.json`, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(`${OUT}/scaling.svg`, chart(results));
const base = results[0]?.sustained || 1;
console.log(
  `\nloadtest:scaling — search (hybrid) at p95 ≤ ${SLO_P95_MS} ms, ${CPU_QUOTA} CPU per database node, ${DOCUMENTS} SciFact documents`,
);
console.log(
  "replicas  sustained req/s  ×primary  p50 ms  p95 ms  p99 ms  share of reads                 max lag ms  RYW violations  capped",
);
for (const r of results) {
  const share = Object.entries(r.share)
    .map(([n, s]) => `${n} ${(100 * s).toFixed(0)}%`)
    .join(", ");
  console.log(
    `${String(r.replicas).padStart(8)}  ${r.sustained.toFixed(1).padStart(15)}  ${(r.sustained / base).toFixed(2).padStart(8)}  ${(r.best?.p50 ?? 0).toFixed(0).padStart(6)}  ${(r.best?.p95 ?? 0).toFixed(0).padStart(6)}  ${(r.best?.p99 ?? 0).toFixed(0).padStart(6)}  ${share.padEnd(30)} ${r.maxLagMs.toFixed(0).padStart(10)}  ${String(r.rywViolations).padStart(14)}  ${r.capped}`,
  );
}
console.log(
  `chart: ${OUT}/scaling.svg, data: ${OUT}/scaling.json (target: 2 replicas ≥ 2.5× the primary alone, 0 RYW violations)`,
);
