/**
 * `npm run loadtest:scaling`: how read throughput grows with replicas — the primary alone, 1, 2 and 4
 * replicas, and 4 replicas of which two cascade from replica1 — on the native topology.
 *
 * Every database node gets the same CPU cap (SCALING_CPU_QUOTA CPUs; cgroups, as root) so that the
 * databases, not the API or the load generator, are the bottleneck on a small machine; the API runs
 * in a process of its own (`pgrag serve`) whose CPU is reported, as is the load generator's, so a
 * bottleneck outside the databases shows. Per configuration: an unmeasured warm-up until latency is
 * steady, then SCALING_REPETITIONS searches for the highest search rate that holds p95 ≤ the SLO with
 * no error and no dropped request (step up; retry a miss once; bisect), reported as median and range.
 * A read-your-writes scenario runs alongside every probe: a read that does not see its write is a
 * violation (and fails the run); failed reads are counted apart. The run is compared with the
 * previous one (loadtest-results/scaling.json) and says whether they agree within 20%.
 * Its own cluster (PGRAG_CLUSTER_DIR=/var/tmp/pgrag/scaling, ports 45432+ / 46432); stops by itself.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { loadBeirCollection } from "../src/evaluation/beir.ts";
import { SCIFACT_DIR } from "../src/evaluation/datasets.ts";
import { percentile } from "../src/evaluation/metrics.ts";
import { createLogger } from "../src/logger.ts";
import { waitFor } from "../harness/wait-for.ts";
import { capProcessTree, processCpuSeconds } from "./cpu-cap.ts";
import { searchSustainedRate } from "./rate-search.ts";
import { runScenarios } from "./runner.ts";

const CLUSTER = { PGRAG_CLUSTER_DIR: "/var/tmp/pgrag/scaling", PGRAG_PG_PORT: "45432", PGRAG_PGBOUNCER_PORT: "46432" };
const API_PORT = Number(process.env.SCALING_API_PORT ?? 48080);
// CPUs per database node: five nodes at 0.1 leave 1.5 of the machine's 2 CPUs to the API, PgBouncer
// and the load generator, so the databases stay the bottleneck up to 4 replicas.
const CPU_QUOTA = Number(process.env.SCALING_CPU_QUOTA ?? 0.1);
const SLO_P95_MS = Number(process.env.SCALING_SLO_P95_MS ?? 250);
const STEP_SECONDS = Number(process.env.SCALING_STEP_SECONDS ?? 6);
const REPETITIONS = Number(process.env.SCALING_REPETITIONS ?? 3);
const DOCUMENTS = Number(process.env.SCALING_DOCUMENTS ?? 1000);
const MIXED_RATE = 2; // read-your-writes rounds per second alongside every probe
const AGREEMENT = 0.2;
const COOL_DOWN_MS = 3_000;
const CLUSTER_SCRIPT = fileURLToPath(new URL("../replicas/cluster.sh", import.meta.url));
const CLI = fileURLToPath(new URL("../bin/pgrag.js", import.meta.url));
const ENV_FILE = `${CLUSTER.PGRAG_CLUSTER_DIR}/cluster.env`;
const OUT = "loadtest-results";

interface Configuration {
  readonly name: string;
  readonly replicas: number;
  readonly cascade: boolean;
}
const CONFIGURATIONS: Configuration[] = [
  { name: "primary alone", replicas: 0, cascade: false },
  { name: "1 replica", replicas: 1, cascade: false },
  { name: "2 replicas", replicas: 2, cascade: false },
  { name: "4 replicas", replicas: 4, cascade: false },
  { name: "4 replicas, 3–4 cascaded", replicas: 4, cascade: true },
].filter((c) => !process.env.SCALING_ONLY || process.env.SCALING_ONLY.split(",").includes(c.name));

interface Step {
  rate: number;
  achieved: number;
  p50: number;
  p95: number;
  errors: number;
  dropped: number;
  held: boolean;
}

interface Outcome {
  configuration: string;
  replicas: number;
  cascade: boolean;
  capped: boolean;
  /** Sustained rate of each repetition. */
  repetitions: number[];
  median: number;
  min: number;
  max: number;
  /** Latency at the median repetition's highest held step. */
  p50: number;
  p95: number;
  warmupSeconds: number;
  steps: Step[];
  share: Record<string, number>;
  maxLagMs: Record<string, number>;
  apiCpu: number;
  loadCpu: number;
  violations: number;
  readErrors: number;
  writeFailures: number;
}

const cluster = (...args: string[]) =>
  execFileSync("bash", [CLUSTER_SCRIPT, ...args], { env: { ...process.env, ...CLUSTER }, encoding: "utf8" });
const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

mkdirSync(OUT, { recursive: true });
const apiLog = openSync(`${OUT}/scaling-api.log`, "w");

/** The API as its own process, so its CPU is its own and not the load generator's. */
async function startApi(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, "serve"], {
    env: {
      ...process.env,
      PGRAG_ENV_FILE: ENV_FILE,
      PGRAG_HOST: "127.0.0.1",
      PGRAG_PORT: String(API_PORT),
      PGRAG_LOG_LEVEL: "warn",
      PGRAG_POOL_SIZE: "24",
      PGRAG_WORKER_CONCURRENCY: "0",
      PGRAG_RATE_LIMIT_PER_SECOND: "1000000",
      PGRAG_RATE_LIMIT_BURST: "1000000",
      PGRAG_TENANT_RATE_LIMIT_PER_SECOND: "1000000",
    },
    // Its log (overload answers 503 by the hundred) goes to a file, not over the results.
    stdio: ["ignore", apiLog, apiLog],
  });
  await waitFor("the API to answer", async () => (await fetch(`http://127.0.0.1:${API_PORT}/healthz`)).ok, 60_000);
  return child;
}

async function stopApi(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

/** A metric of the API's, summed per node (Prometheus text format). */
async function metricPerNode(name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${API_PORT}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, node = "", value] of text.matchAll(
    new RegExp(`^${name}\\{[^}]*node="([^"]+)"[^}]*\\} (\\S+)$`, "gm"),
  )) {
    out[node] = (out[node] ?? 0) + Number(value);
  }
  return out;
}

/** Reads served per node so far, from the API's own metric. */
const readsPerNode = () => metricPerNode("pgrag_db_reads_total");

function capNodes(replicas: number): boolean {
  const nodes = ["primary", ...Array.from({ length: replicas }, (_, i) => `replica${i + 1}`)];
  return nodes
    .map((node) => {
      const pid = Number(readFileSync(`${CLUSTER.PGRAG_CLUSTER_DIR}/${node}/postmaster.pid`, "utf8").split("\n")[0]);
      return capProcessTree(`pgrag-scaling-${node}`, pid, CPU_QUOTA);
    })
    .every(Boolean);
}

async function measure(configuration: Configuration, apiKey: string): Promise<Outcome> {
  cluster("up", "--replicas", String(configuration.replicas), ...(configuration.cascade ? ["--cascade"] : []));
  const capped = capNodes(configuration.replicas);
  cluster("restart-pgbouncer"); // pooled server connections are forked anew, inside the caps
  const api = await startApi();
  const baseUrl = `http://127.0.0.1:${API_PORT}`;
  const counters = { violations: 0, readErrors: 0, writeFailures: 0 };
  const maxLagMs: Record<string, number> = {};
  // The lag the router's own monitor measures (its gauge), not /readyz, which would add probes of
  // every node to the load being measured.
  const lagTimer = setInterval(async () => {
    try {
      for (const [node, seconds] of Object.entries(await metricPerNode("pgrag_db_replica_lag_seconds"))) {
        if (Number.isFinite(seconds)) maxLagMs[node] = Math.max(maxLagMs[node] ?? 0, seconds * 1000);
      }
    } catch {
      // the API is starting or stopping
    }
  }, 500);

  const probe = async (rate: number): Promise<Step> => {
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
        rateScale: MIXED_RATE / 10,
        duration: `${STEP_SECONDS}s`,
      }),
    ]);
    counters.violations += mixed.metrics.ryw_violations?.count ?? 0;
    counters.readErrors += mixed.metrics.ryw_read_errors?.count ?? 0;
    counters.writeFailures += mixed.metrics.ryw_write_failures?.count ?? 0;
    const d = search.metrics["http_req_duration{endpoint:search}"] ?? {};
    const step: Step = {
      rate,
      achieved: search.metrics["http_reqs{endpoint:search}"]?.rate ?? 0,
      p50: d.med ?? 0,
      p95: d["p(95)"] ?? 0,
      errors: search.metrics.http_req_failed?.fails ?? 0,
      dropped: search.metrics.dropped_iterations?.count ?? 0,
      held: false,
    };
    step.held = step.p95 <= SLO_P95_MS && step.errors === 0 && step.dropped === 0 && step.achieved >= 0.9 * rate;
    // After an overload the next probe starts from a quiet system, not from the queues this one left.
    if (!step.held) await new Promise((resolve) => setTimeout(resolve, COOL_DOWN_MS));
    console.log(
      `  ${configuration.name}: ${rate}/s → ${step.achieved.toFixed(1)} req/s, p50 ${step.p50.toFixed(0)} ms, p95 ${step.p95.toFixed(0)} ms${step.held ? "" : `, missed (${step.errors} errors, ${step.dropped} dropped)`}`,
    );
    return step;
  };

  // Warm-up, unmeasured: caches, pools and plans settle at a moderate rate until p50 is steady.
  const warmRate = 8 * Math.max(1, configuration.replicas);
  const warmStarted = performance.now();
  let lastP50 = Number.POSITIVE_INFINITY;
  for (let window = 0; window < 6; window++) {
    const summary = await runScenarios({
      baseUrl,
      apiKey,
      scenarios: ["search"],
      collection: "scifact",
      rateScale: warmRate / 50,
      duration: "4s",
    });
    const p50 = summary.metrics["http_req_duration{endpoint:search}"]?.med ?? 0;
    if (Math.abs(p50 - lastP50) <= 0.2 * lastP50) break;
    lastP50 = p50;
  }
  const warmupSeconds = (performance.now() - warmStarted) / 1000;

  const readsBefore = await readsPerNode();
  const apiCpuBefore = processCpuSeconds(api.pid ?? 0);
  const loadCpuBefore = process.cpuUsage();
  const measuredFrom = performance.now();
  const searches = [];
  let start = warmRate;
  for (let repetition = 0; repetition < REPETITIONS; repetition++) {
    const result = await searchSustainedRate(probe, {
      start,
      factor: 1.5,
      precision: 0.1,
      maxProbes: 14,
      minRate: 2,
    });
    searches.push(result);
    console.log(`  ${configuration.name}: repetition ${repetition + 1} sustained ${result.sustained}/s`);
    start = Math.max(2, Math.round(result.sustained * 0.7));
  }
  const wall = (performance.now() - measuredFrom) / 1000;
  const apiCpu = (processCpuSeconds(api.pid ?? 0) - apiCpuBefore) / wall;
  const load = process.cpuUsage(loadCpuBefore);
  const readsAfter = await readsPerNode();
  clearInterval(lagTimer);
  await stopApi(api);

  const total = Object.keys(readsAfter).reduce((s, n) => s + (readsAfter[n] ?? 0) - (readsBefore[n] ?? 0), 0);
  const share: Record<string, number> = {};
  for (const node of Object.keys(readsAfter))
    share[node] = ((readsAfter[node] ?? 0) - (readsBefore[node] ?? 0)) / Math.max(1, total);
  const repetitions = searches.map((s) => s.sustained);
  const medianSearch = [...searches].sort((a, b) => a.sustained - b.sustained)[Math.floor(searches.length / 2)];
  const best = medianSearch?.probes.filter((p) => p.held && p.rate === medianSearch.sustained).at(-1);
  return {
    configuration: configuration.name,
    replicas: configuration.replicas,
    cascade: configuration.cascade,
    capped,
    repetitions,
    median: median(repetitions),
    min: Math.min(...repetitions),
    max: Math.max(...repetitions),
    p50: best?.p50 ?? 0,
    p95: best?.p95 ?? 0,
    warmupSeconds,
    steps: searches.flatMap((s) => s.probes),
    share,
    maxLagMs,
    apiCpu,
    loadCpu: (load.user + load.system) / 1e6 / wall,
    ...counters,
  };
}

/** Brings the topology up with two replicas and loads the SciFact documents; returns an API key. */
async function seed(): Promise<string> {
  cluster("up", "--replicas", "2");
  const env = { ...process.env, PGRAG_ENV_FILE: ENV_FILE, PGRAG_LOG_LEVEL: "warn" };
  execFileSync(process.execPath, [CLI, "migrate"], { env });
  const app = createApp(loadConfig({ ...env, PGRAG_PORT: "0" }), { logger: createLogger({ logLevel: "warn" }) });
  await app.start({ listen: false });
  try {
    const { apiKey } = await loadBeirCollection(app, SCIFACT_DIR, (line) => console.log(line), { limit: DOCUMENTS });
    return apiKey;
  } finally {
    await app.stop();
  }
}

/** Sustained rate per configuration (bar: median, whisker: range) and p95 against offered rate. */
function chart(results: Outcome[]): string {
  const colours = ["#555555", "#336699", "#3b8f5a", "#c0782a", "#8e44ad"];
  const max = Math.max(1, ...results.map((r) => r.max));
  const bars = results
    .map((r, i) => {
      const y = (v: number) => 250 - (v / max) * 200;
      const x = 60 + i * 100;
      return (
        `<rect x="${x}" y="${y(r.median)}" width="60" height="${250 - y(r.median)}" fill="${colours[i % colours.length]}"/>` +
        `<line x1="${x + 30}" y1="${y(r.min)}" x2="${x + 30}" y2="${y(r.max)}" stroke="#000" stroke-width="2"/>` +
        `<text x="${x + 30}" y="${y(r.max) - 6}" text-anchor="middle" font-size="12">${r.median.toFixed(0)}</text>` +
        `<text x="${x + 30}" y="268" text-anchor="middle" font-size="11">${r.configuration.replace(", 3–4 cascaded", " casc.")}</text>`
      );
    })
    .join("");
  const maxRate = Math.max(1, ...results.flatMap((r) => r.steps.map((s) => s.rate)));
  const maxP95 = Math.max(
    SLO_P95_MS * 2,
    ...results.flatMap((r) => r.steps.map((s) => Math.min(s.p95, SLO_P95_MS * 4))),
  );
  const ox = 620;
  const px = (rate: number) => ox + (rate / maxRate) * 420;
  const py = (p95: number) => 250 - (Math.min(p95, maxP95) / maxP95) * 200;
  const points = results
    .map((r, i) =>
      r.steps
        .map(
          (s) =>
            `<circle cx="${px(s.rate).toFixed(1)}" cy="${py(s.p95).toFixed(1)}" r="3" fill="${s.held ? colours[i % colours.length] : "none"}" stroke="${colours[i % colours.length]}"/>`,
        )
        .join(""),
    )
    .join("");
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="1080" height="300" font-family="sans-serif">` +
    `<text x="20" y="20" font-size="14">Sustained search req/s at p95 ≤ ${SLO_P95_MS} ms, median and range of ${REPETITIONS} (${CPU_QUOTA} CPU per database node)</text>` +
    `<line x1="50" y1="250" x2="${60 + results.length * 100}" y2="250" stroke="#333"/>${bars}` +
    `<text x="${ox}" y="40" font-size="13">p95 (ms) at each probed rate (filled: held)</text>` +
    `<line x1="${ox}" y1="250" x2="${ox + 430}" y2="250" stroke="#333"/><line x1="${ox}" y1="50" x2="${ox}" y2="250" stroke="#333"/>` +
    `<line x1="${ox}" y1="${py(SLO_P95_MS)}" x2="${ox + 430}" y2="${py(SLO_P95_MS)}" stroke="#c00" stroke-dasharray="4"/>` +
    `<text x="${ox + 432}" y="${py(SLO_P95_MS) + 4}" font-size="11" fill="#c00">SLO</text>` +
    `<text x="${ox + 400}" y="268" font-size="11">${maxRate} req/s</text>${points}</svg>\n`
  );
}

const previous: Outcome[] | null = existsSync(`${OUT}/scaling.json`)
  ? ((JSON.parse(readFileSync(`${OUT}/scaling.json`, "utf8")) as { results?: Outcome[] }).results ?? null)
  : null;
const apiKey = await seed();
const results: Outcome[] = [];
try {
  for (const configuration of CONFIGURATIONS) results.push(await measure(configuration, apiKey));
} finally {
  cluster("down");
}
if (existsSync(`${OUT}/scaling.json`)) renameSync(`${OUT}/scaling.json`, `${OUT}/scaling.previous.json`);
writeFileSync(
  `${OUT}/scaling.json`,
  `${JSON.stringify({ cpuQuota: CPU_QUOTA, sloP95Ms: SLO_P95_MS, stepSeconds: STEP_SECONDS, results }, null, 2)}\n`,
);
writeFileSync(`${OUT}/scaling.svg`, chart(results));

const base = results.find((r) => r.replicas === 0)?.median || Number.NaN;
const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
console.log(
  `\nloadtest:scaling — hybrid search, p95 ≤ ${SLO_P95_MS} ms, no errors or drops; ${CPU_QUOTA} CPU per database node; ` +
    `${DOCUMENTS} SciFact documents; ${REPETITIONS} repetitions of ${STEP_SECONDS} s probes`,
);
console.log(
  "configuration               median req/s  range        ×primary  p50 ms  p95 ms  API CPU  load CPU  share of reads                          max lag ms                 RYW violations  read errors  previous run",
);
for (const r of results) {
  const share = Object.entries(r.share)
    .filter(([, s]) => s > 0)
    .map(([n, s]) => `${n} ${pct(s)}`)
    .join(", ");
  const lag = Object.entries(r.maxLagMs)
    .map(([n, ms]) => `${n.replace("replica", "r")} ${ms.toFixed(0)}`)
    .join(", ");
  const before = previous?.find((p) => p.configuration === r.configuration);
  const agreement = before
    ? `${before.median.toFixed(0)} → ${Math.abs(r.median - before.median) <= AGREEMENT * Math.max(r.median, before.median) ? "agrees" : "DISAGREES"} (±${pct(AGREEMENT)})`
    : "none";
  console.log(
    `${r.configuration.padEnd(26)}  ${r.median.toFixed(0).padStart(12)}  ${`${r.min}–${r.max}`.padEnd(11)}  ${(r.median / base).toFixed(2).padStart(8)}  ${r.p50.toFixed(0).padStart(6)}  ${r.p95.toFixed(0).padStart(6)}  ${pct(r.apiCpu).padStart(7)}  ${pct(r.loadCpu).padStart(8)}  ${share.padEnd(38)}  ${lag.padEnd(25)}  ${String(r.violations).padStart(14)}  ${String(r.readErrors).padStart(11)}  ${agreement}`,
  );
}
const ratio = (name: string) => (results.find((r) => r.configuration === name)?.median ?? Number.NaN) / base;
const direct4 = results.find((r) => r.configuration === "4 replicas")?.median ?? Number.NaN;
const cascaded4 = results.find((r) => r.configuration === "4 replicas, 3–4 cascaded")?.median ?? Number.NaN;
const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
console.log(
  [
    `targets: 2 replicas ≥ 2.5× the primary alone: ${ratio("2 replicas").toFixed(2)}× ${verdict(ratio("2 replicas") >= 2.5)}`,
    `4 replicas ≥ 3.5×: ${ratio("4 replicas").toFixed(2)}× ${verdict(ratio("4 replicas") >= 3.5)}`,
    `cascaded within 10% of direct: ${pct(cascaded4 / direct4 - 1)} ${verdict(Math.abs(cascaded4 / direct4 - 1) <= 0.1)}`,
    `read-your-writes violations: ${results.reduce((s, r) => s + r.violations, 0)}`,
  ].join("; "),
);
console.log(`chart: ${OUT}/scaling.svg, data: ${OUT}/scaling.json (the previous run's: scaling.previous.json)`);
process.exitCode = results.some((r) => r.violations > 0) ? 1 : 0;
