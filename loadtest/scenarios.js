// @ts-check
/**
 * The load-test scenarios, shared by the k6 script (loadtest/k6/pgrag.js) and the Node runner
 * (loadtest/run.ts), so both drive the same traffic and check the same thresholds. Plain data and
 * pure functions only: k6 and Node can both import this module.
 */

/** @typedef {{ endpoint: string, executor: "constant-arrival-rate", rate: number, duration: string, maxVUs: number }} ConstantScenario */
/** @typedef {{ endpoint: string, executor: "ramping-arrival-rate", startRate: number, stages: { target: number, duration: string }[], maxVUs: number }} RampingScenario */

/** @type {Record<string, ConstantScenario | RampingScenario>} */
export const SCENARIOS = {
  search: { endpoint: "search", executor: "constant-arrival-rate", rate: 50, duration: "30s", maxVUs: 64 },
  chat: { endpoint: "chat", executor: "constant-arrival-rate", rate: 4, duration: "30s", maxVUs: 16 },
  mixed: { endpoint: "mixed", executor: "constant-arrival-rate", rate: 10, duration: "30s", maxVUs: 32 },
  ingest: {
    endpoint: "ingest",
    executor: "ramping-arrival-rate",
    startRate: 1,
    stages: [
      { target: 5, duration: "10s" },
      { target: 5, duration: "10s" },
      { target: 0, duration: "5s" },
    ],
    maxVUs: 16,
  },
};

/** Thresholds per endpoint tag, in k6's syntax; the Node runner evaluates the same expressions. */
export const THRESHOLDS = {
  http_req_failed: ["rate<0.01"],
  "http_req_duration{endpoint:search}": ["p(95)<300", "p(99)<600"],
  "http_req_duration{endpoint:chat}": ["p(95)<3000", "p(99)<5000"],
  "http_req_duration{endpoint:mixed}": ["p(95)<500", "p(99)<1000"],
  "http_req_duration{endpoint:ingest}": ["p(95)<1000", "p(99)<2000"],
  ryw_violations: ["count==0"],
  // Failed reads are errors, not violations: they count against http_req_failed, not consistency.
};

export const QUERIES = [
  "How do read replicas serve search traffic?",
  "What does PgBouncer transaction pooling change for session settings?",
  "Which index does pgvector use for cosine nearest neighbours?",
  "How is BM25 computed from Postgres text search lexemes?",
  "What happens to a read when its replica stops?",
  "How does a client read its own writes?",
  "Why are documents chunked with overlap?",
  "How are citations attached to streamed answers?",
];

/** A small seed corpus for the collection the scenarios use. */
export const SEED_DOCUMENTS = QUERIES.map((query, i) => ({
  external_id: `seed-${i}`,
  content:
    `# Seed ${i}\n\n${query} This seed passage exists so that load tests have something to retrieve. ` +
    "Replicas, PgBouncer, pgvector, BM25, consistency tokens and citations are all part of pgrag.",
}));

/** @param {number} i */
export function searchBody(i, collection = "loadtest") {
  return { collection, query: QUERIES[i % QUERIES.length], mode: "hybrid", k: 10 };
}

/** @param {number} i */
export function chatBody(i, collection = "loadtest") {
  return { collection, question: QUERIES[i % QUERIES.length], stream: true };
}

/** @param {number} i @param {string} runId */
export function ingestBody(i, runId) {
  return {
    documents: Array.from({ length: 10 }, (_, j) => ({
      external_id: `burst-${runId}-${i}-${j}`,
      content: `Burst document ${i}.${j} of run ${runId}. ${QUERIES[(i + j) % QUERIES.length]}`,
    })),
  };
}

/**
 * What one read-your-writes round showed. A *violation* is a read, carrying the write's consistency
 * token, that does not see the write: 404, or an older version than the write answered. A read that
 * failed (an error status such as 429/503, a timeout, no answer) says nothing about consistency and is
 * counted apart, as is a write that did not succeed.
 * @param {{ status: number, version?: number }} write
 * @param {{ status: number, version?: number } | null} read null when no response came (timeout, network)
 * @returns {"consistent" | "violation" | "read-error" | "write-failed"}
 */
export function classifyOwnRead(write, read) {
  if (write.status < 200 || write.status > 299) return "write-failed";
  if (read === null) return "read-error";
  if (read.status === 404) return "violation";
  if (read.status !== 200) return "read-error";
  if (typeof write.version === "number" && !(typeof read.version === "number" && read.version >= write.version)) {
    return "violation";
  }
  return "consistent";
}

/** Seconds in a k6 duration string such as "30s", "2m" or "1m30s". @param {string} duration */
export function durationSeconds(duration) {
  let total = 0;
  for (const [, value, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(value) * { ms: 0.001, s: 1, m: 60, h: 3600 }[/** @type {"ms"|"s"|"m"|"h"} */ (unit)];
  }
  return total;
}
