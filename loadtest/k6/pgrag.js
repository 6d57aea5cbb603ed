// @ts-check
/**
 * k6 load test of pgrag: search-heavy, chat (SSE), mixed read/write with read-your-writes checks,
 * and an ingestion burst. Run:  k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=pgr_… loadtest/k6/pgrag.js
 * Options (-e): SCENARIOS=search,chat,mixed,ingest  RATE_SCALE=1  DURATION=30s  COLLECTION=loadtest
 * WARMUP=10s (unmeasured searches at half the rate first; the scenarios start after it)
 * SUMMARY=loadtest-summary.json. Scenarios and thresholds come from ../scenarios.js.
 */
import { check } from "k6";
import { Counter } from "k6/metrics";
import http from "k6/http";
import {
  chatBody,
  classifyOwnRead,
  durationSeconds,
  ingestBody,
  SCENARIOS,
  SEED_DOCUMENTS,
  searchBody,
  THRESHOLDS,
} from "../scenarios.js";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";
const COLLECTION = __ENV.COLLECTION || "loadtest";
const RATE_SCALE = Number(__ENV.RATE_SCALE || "1");
const selected = (__ENV.SCENARIOS || "search,chat,mixed,ingest").split(",");
const WARMUP = __ENV.WARMUP || "0s";
const headers = { Authorization: `Bearer ${__ENV.API_KEY}`, "Content-Type": "application/json" };
const rywViolations = new Counter("ryw_violations");
const rywReadErrors = new Counter("ryw_read_errors");
const rywWriteFailures = new Counter("ryw_write_failures");

/** @type {Record<string, import("k6/options").Scenario>} */
const scenarios = {};
for (const name of selected) {
  const s = SCENARIOS[name];
  if (!s) throw new Error(`unknown scenario ${name}`);
  scenarios[name] =
    s.executor === "constant-arrival-rate"
      ? {
          executor: s.executor,
          rate: Math.max(1, Math.round(s.rate * RATE_SCALE)),
          timeUnit: "1s",
          duration: __ENV.DURATION || s.duration,
          preAllocatedVUs: Math.ceil(s.maxVUs / 4),
          maxVUs: s.maxVUs,
          exec: name,
          startTime: WARMUP,
          tags: { endpoint: s.endpoint },
        }
      : {
          executor: s.executor,
          startRate: s.startRate,
          timeUnit: "1s",
          stages: s.stages.map((st) => ({ ...st, target: Math.round(st.target * RATE_SCALE) })),
          preAllocatedVUs: Math.ceil(s.maxVUs / 4),
          maxVUs: s.maxVUs,
          exec: name,
          startTime: WARMUP,
          tags: { endpoint: s.endpoint },
        };
}
// Warm-up: searches tagged endpoint "warmup", so no endpoint's thresholds see them.
const searchScenario = SCENARIOS.search;
if (durationSeconds(WARMUP) > 0 && searchScenario?.executor === "constant-arrival-rate") {
  scenarios.warmup = {
    executor: "constant-arrival-rate",
    rate: Math.max(1, Math.round(searchScenario.rate * RATE_SCALE * 0.5)),
    timeUnit: "1s",
    duration: WARMUP,
    preAllocatedVUs: 8,
    maxVUs: 32,
    exec: "warmup",
    tags: { endpoint: "warmup" },
  };
}

export const options = {
  scenarios,
  thresholds: THRESHOLDS,
  summaryTrendStats: ["avg", "min", "med", "p(95)", "p(99)", "max"],
};

export function setup() {
  http.post(`${BASE_URL}/v1/collections`, JSON.stringify({ name: COLLECTION }), { headers });
  const seeded = http.post(
    `${BASE_URL}/v1/collections/${COLLECTION}/documents`,
    JSON.stringify({ documents: SEED_DOCUMENTS }),
    { headers },
  );
  return { token: seeded.headers["X-Consistency-Token"] || "" };
}

/** @param {{ token: string }} data */
export function search(data) {
  const res = http.post(`${BASE_URL}/v1/search`, JSON.stringify(searchBody(__ITER, COLLECTION)), {
    headers: { ...headers, "X-Consistency-Token": data.token },
    tags: { endpoint: "search" },
  });
  check(res, { "search 200": (r) => r.status === 200 });
}

/** @param {{ token: string }} data */
export function warmup(data) {
  http.post(`${BASE_URL}/v1/search`, JSON.stringify(searchBody(__ITER, COLLECTION)), {
    headers: { ...headers, "X-Consistency-Token": data.token },
    tags: { endpoint: "warmup" },
  });
}

export function chat() {
  // k6 reads the whole SSE stream as one body; the Node runner measures the same way.
  const res = http.post(`${BASE_URL}/v1/chat`, JSON.stringify(chatBody(__ITER, COLLECTION)), {
    headers,
    tags: { endpoint: "chat" },
    timeout: "60s",
  });
  check(res, { "chat 200": (r) => r.status === 200, "chat done": (r) => String(r.body).includes("event: done") });
}

export function mixed() {
  const id = `mixed-${__VU}-${__ITER}`;
  const put = http.put(
    `${BASE_URL}/v1/collections/${COLLECTION}/documents/${id}`,
    JSON.stringify({ content: `Mixed write ${id}` }),
    {
      headers,
      tags: { endpoint: "mixed" },
    },
  );
  const token = put.headers["X-Consistency-Token"] || "";
  const read = http.get(`${BASE_URL}/v1/collections/${COLLECTION}/documents/${id}`, {
    headers: { ...headers, "X-Consistency-Token": token },
    tags: { endpoint: "mixed" },
  });
  // A read with the write's token that does not see the write is a violation; a failed read is not.
  const outcome = classifyOwnRead(withVersion(put), read.status === 0 ? null : withVersion(read));
  if (outcome === "violation") rywViolations.add(1);
  if (outcome === "read-error") rywReadErrors.add(1);
  if (outcome === "write-failed") rywWriteFailures.add(1);
  check(read, { "own write visible": () => outcome === "consistent" });
}

/** @param {import("k6/http").RefinedResponse<any>} res */
function withVersion(res) {
  try {
    const body = /** @type {{ version?: unknown }} */ (res.json());
    return typeof body.version === "number" ? { status: res.status, version: body.version } : { status: res.status };
  } catch {
    return { status: res.status };
  }
}

export function ingest() {
  const res = http.post(
    `${BASE_URL}/v1/collections/${COLLECTION}/documents`,
    JSON.stringify(ingestBody(__ITER, `${__VU}`)),
    {
      headers,
      tags: { endpoint: "ingest" },
    },
  );
  check(res, { "ingest 202": (r) => r.status === 202 });
}

/** @param {object} data */
export function handleSummary(data) {
  return {
    [__ENV.SUMMARY || "loadtest-summary.json"]: JSON.stringify(data, null, 2),
    stdout: `${JSON.stringify(data, null, 2)}\n`,
  };
}
