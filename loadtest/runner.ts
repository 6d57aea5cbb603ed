/**
 * The Node runner of the k6 scenarios, for machines without a k6 binary: the same scenarios and
 * thresholds (../scenarios.js), open-model arrival rates (a request starts on schedule whether or
 * not earlier ones finished, up to maxVUs in flight; beyond that an iteration is dropped and counted,
 * as in k6), and a summary with k6's field names. Bounded in time; it stops by itself.
 */
import { percentile } from "../src/evaluation/metrics.ts";
import {
  chatBody,
  classifyOwnRead,
  durationSeconds,
  ingestBody,
  SCENARIOS,
  SEED_DOCUMENTS,
  searchBody,
  THRESHOLDS,
} from "./scenarios.js";

export interface RunOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly scenarios: readonly string[];
  readonly collection?: string;
  /** Multiplies every scenario's rate. */
  readonly rateScale?: number;
  /** Overrides every scenario's duration, e.g. "5s" (ramping stages keep their proportions). */
  readonly duration?: string;
  /** Unmeasured searches at half the search rate for this long first, e.g. "10s" (as k6's WARMUP). */
  readonly warmup?: string;
}

interface Sample {
  endpoint: string;
  ms: number;
  ok: boolean;
}

export interface Summary {
  readonly scenarios: string[];
  readonly duration_s: number;
  readonly metrics: Record<string, Record<string, number>>;
  readonly thresholds: Record<string, { ok: boolean; expression: string }[]>;
  readonly ok: boolean;
}

function trend(values: number[]): Record<string, number> {
  if (values.length === 0) return { avg: 0, min: 0, med: 0, "p(95)": 0, "p(99)": 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const avg = sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length);
  return {
    avg,
    min: sorted[0] ?? 0,
    med: percentile(sorted, 50),
    "p(95)": percentile(sorted, 95),
    "p(99)": percentile(sorted, 99),
    max: sorted.at(-1) ?? 0,
  };
}

/** Arrival times (seconds from start) of a scenario's iterations. */
function schedule(name: string, options: RunOptions): number[] {
  const scenario = SCENARIOS[name];
  if (!scenario) throw new Error(`unknown scenario "${name}" (${Object.keys(SCENARIOS).join(", ")})`);
  const scale = options.rateScale ?? 1;
  const times: number[] = [];
  if (scenario.executor === "constant-arrival-rate") {
    const rate = Math.max(1, Math.round(scenario.rate * scale));
    const seconds = durationSeconds(options.duration ?? scenario.duration);
    for (let t = 0; t < seconds; t += 1 / rate) times.push(t);
    return times;
  }
  // Ramping: the rate moves linearly between stage targets; iterations where its integral crosses an integer.
  // A duration override stretches or shrinks the stages to fit it.
  const total = scenario.stages.reduce((sum, st) => sum + durationSeconds(st.duration), 0);
  const stretch = options.duration ? durationSeconds(options.duration) / total : 1;
  let rate = scenario.startRate * scale;
  let t0 = 0;
  let owed = 0;
  for (const stage of scenario.stages) {
    const length = durationSeconds(stage.duration) * stretch;
    const target = stage.target * scale;
    for (let t = 0; t < length; t += 0.01) {
      owed += (rate + ((target - rate) * t) / length) * 0.01;
      while (owed >= 1) {
        times.push(t0 + t);
        owed -= 1;
      }
    }
    rate = target;
    t0 += length;
  }
  return times;
}

export async function runScenarios(options: RunOptions): Promise<Summary> {
  if (options.warmup && durationSeconds(options.warmup) > 0) {
    await runScenarios({
      ...options,
      scenarios: ["search"],
      rateScale: (options.rateScale ?? 1) * 0.5,
      duration: options.warmup,
      warmup: undefined,
    });
  }
  const collection = options.collection ?? "loadtest";
  const headers = { Authorization: `Bearer ${options.apiKey}`, "Content-Type": "application/json" };
  const post = (path: string, body: unknown, extra: Record<string, string> = {}) =>
    fetch(`${options.baseUrl}${path}`, {
      method: "POST",
      headers: { ...headers, ...extra },
      body: JSON.stringify(body),
    });
  await post("/v1/collections", { name: collection }).then((r) => r.arrayBuffer());
  const seeded = await post(`/v1/collections/${collection}/documents`, { documents: SEED_DOCUMENTS });
  await seeded.arrayBuffer();
  const seedToken = seeded.headers.get("X-Consistency-Token") ?? "";

  const samples: Sample[] = [];
  let dropped = 0;
  const ownReads = { consistent: 0, violation: 0, "read-error": 0, "write-failed": 0 };
  const runId = Date.now().toString(36);
  /** One timed request; its status, headers and body, or null when no response came. */
  const timed = async (endpoint: string, run: () => Promise<Response>, expect: number[]) => {
    const started = performance.now();
    try {
      const response = await run();
      const body = await response.text();
      samples.push({ endpoint, ms: performance.now() - started, ok: expect.includes(response.status) });
      return { status: response.status, headers: response.headers, body };
    } catch {
      samples.push({ endpoint, ms: performance.now() - started, ok: false });
      return null;
    }
  };
  const iteration: Record<string, (i: number) => Promise<unknown>> = {
    search: (i) =>
      timed("search", () => post("/v1/search", searchBody(i, collection), { "X-Consistency-Token": seedToken }), [200]),
    chat: (i) => timed("chat", () => post("/v1/chat", chatBody(i, collection)), [200]),
    ingest: (i) => timed("ingest", () => post(`/v1/collections/${collection}/documents`, ingestBody(i, runId)), [202]),
    mixed: async (i) => {
      const id = `mixed-${runId}-${i}`;
      const put = await timed(
        "mixed",
        () =>
          fetch(`${options.baseUrl}/v1/collections/${collection}/documents/${id}`, {
            method: "PUT",
            headers,
            body: JSON.stringify({ content: `Mixed write ${id}` }),
          }),
        [202],
      );
      if (put === null || put.status !== 202) {
        ownReads["write-failed"]++;
        return;
      }
      const token = put.headers.get("X-Consistency-Token") ?? "";
      const read = await timed(
        "mixed",
        () =>
          fetch(`${options.baseUrl}/v1/collections/${collection}/documents/${id}`, {
            headers: { ...headers, "X-Consistency-Token": token },
          }),
        [200],
      );
      ownReads[classifyOwnRead(withVersion(put), read && withVersion(read))]++;
    },
  };

  const started = performance.now();
  await Promise.all(
    options.scenarios.map(async (name) => {
      const maxVUs = SCENARIOS[name]?.maxVUs ?? 1;
      const run = iteration[name];
      if (!run) throw new Error(`unknown scenario "${name}"`);
      let inFlight = 0;
      const pending: Promise<unknown>[] = [];
      for (const [i, at] of schedule(name, options).entries()) {
        const wait = started + at * 1000 - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (inFlight >= maxVUs) {
          dropped++;
          continue;
        }
        inFlight++;
        pending.push(run(i).finally(() => inFlight--));
      }
      await Promise.all(pending);
    }),
  );
  const seconds = (performance.now() - started) / 1000;

  const metrics: Record<string, Record<string, number>> = {
    http_reqs: { count: samples.length, rate: samples.length / seconds },
    http_req_failed: {
      rate: samples.filter((s) => !s.ok).length / Math.max(1, samples.length),
      fails: samples.filter((s) => !s.ok).length,
    },
    http_req_duration: trend(samples.map((s) => s.ms)),
    dropped_iterations: { count: dropped },
    ryw_violations: { count: ownReads.violation },
    ryw_read_errors: { count: ownReads["read-error"] },
    ryw_write_failures: { count: ownReads["write-failed"] },
    ryw_consistent: { count: ownReads.consistent },
  };
  for (const endpoint of new Set(samples.map((s) => s.endpoint))) {
    const mine = samples.filter((s) => s.endpoint === endpoint);
    metrics[`http_req_duration{endpoint:${endpoint}}`] = trend(mine.map((s) => s.ms));
    metrics[`http_reqs{endpoint:${endpoint}}`] = { count: mine.length, rate: mine.length / seconds };
  }
  const thresholds: Summary["thresholds"] = {};
  for (const [metric, expressions] of Object.entries(THRESHOLDS)) {
    const values = metrics[metric];
    if (!values) continue; // a scenario that did not run
    thresholds[metric] = expressions.map((expression) => ({ expression, ok: evaluate(expression, values) }));
  }
  return {
    scenarios: [...options.scenarios],
    duration_s: seconds,
    metrics,
    thresholds,
    ok: Object.values(thresholds).every((list) => list.every((t) => t.ok)),
  };
}

/** A response's status and, when its JSON body has one, the document version. */
function withVersion(response: { status: number; body: string }): { status: number; version?: number } {
  try {
    const { version } = JSON.parse(response.body) as { version?: unknown };
    return typeof version === "number" ? { status: response.status, version } : { status: response.status };
  } catch {
    return { status: response.status };
  }
}

/** k6 threshold expressions: "p(95)<300", "rate<0.01", "count==0". */
function evaluate(expression: string, values: Record<string, number>): boolean {
  const match = /^([a-z]+(?:\(\d+\))?)\s*(<=|>=|==|<|>)\s*([\d.]+)$/.exec(expression);
  if (!match) throw new Error(`unsupported threshold ${expression}`);
  const [, stat = "", op, limit] = match;
  const value = values[stat] ?? Number.NaN;
  const bound = Number(limit);
  return op === "<"
    ? value < bound
    : op === "<="
      ? value <= bound
      : op === ">"
        ? value > bound
        : op === ">="
          ? value >= bound
          : value === bound;
}

export function formatSummary(summary: Summary): string {
  const lines = [`scenarios: ${summary.scenarios.join(", ")} — ${summary.duration_s.toFixed(1)} s`];
  for (const [name, values] of Object.entries(summary.metrics)) {
    lines.push(
      `  ${name.padEnd(40)} ${Object.entries(values)
        .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
        .join("  ")}`,
    );
  }
  for (const [metric, results] of Object.entries(summary.thresholds)) {
    for (const t of results) lines.push(`  ${t.ok ? "✓" : "✗"} ${metric} ${t.expression}`);
  }
  lines.push(summary.ok ? "thresholds: all passed" : "thresholds: some failed");
  return lines.join("\n");
}
