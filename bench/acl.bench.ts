/**
 * `npm run bench:acl [-- --chunks 100000 --queries 300]`: search under document access lists. A
 * collection of N chunks (one a document) whose texts are 4–8 SciFact sentences and whose vectors
 * are SIFT-derived (sift5k centred, each base vector taken with seeded Gaussian noise, then randomly
 * projected to the platform's dimension: real descriptors, not the near-random dev embeddings).
 * Readers are allowed 1%, 10% and 50% of the documents (nested groups), against a tenant-wide reader.
 * Per reader, through the platform's own functions under its principals (row-level security on):
 * the vector leg as the search service runs it (exact scan for selective lists, else HNSW with
 * iterative scans) with recall@10 against an exact scan of the allowed chunks; the BM25 leg as it
 * runs it (early termination, or the allowed chunks scored directly for selective lists) against the
 * other exact path's top 10; and whole hybrid searches (SciFact claims,
 * dev query embeddings). Timings as p50/p95 and as ratios to the tenant-wide reader's p95.
 */
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { readBeirQueries } from "../src/evaluation/beir.ts";
import { readScifactCorpus, SCIFACT_DIR, SIFT5K_DIR } from "../src/evaluation/datasets.ts";
import { createLogger } from "../src/logger.ts";
import { compactCollection } from "../src/postings/postings-compactor.ts";
import { bm25Search } from "../src/retrieval/bm25-search.ts";
import {
  countFilteredChunks,
  hnswSettings,
  type SearchScope,
  vectorSearchExact,
  vectorSearchIndexed,
} from "../src/retrieval/search.repository.ts";
import { readPlan } from "../src/retrieval/read-plan.ts";
import { vectorIndexOf } from "../src/retrieval/search.service.ts";
import { closeDbNode } from "../src/db/pools.ts";
import { createAdminDbNode } from "../src/tenancy/admin-db.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import type { Principal } from "../src/tenancy/principal.ts";
import { readVectors } from "./fvecs.ts";
import { dropBenchTenants } from "./replica-slots.ts";
import { sentencesOf } from "./scratch-schema.ts";
import { benchCollection, writeSyntheticDocuments } from "./synthetic-documents.ts";
import { seeded } from "./seeded-random.ts";
import { formatMs, percentile } from "./stats.ts";

const { values: args } = parseArgs({
  options: { chunks: { type: "string", default: "100000" }, queries: { type: "string", default: "300" } },
});
const CHUNKS = Number(args.chunks);
const QUERIES = Number(args.queries);
const K = 10;
const BATCH = 1_000;
/** Claims whose BM25 top 10 is compared with the other exact path's (scoring every allowed chunk costs most). */
const AGREEMENT = Math.min(QUERIES, Number(process.env.BENCH_AGREEMENT ?? 60));

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn", PGRAG_WORKER_CONCURRENCY: "0" });
const app = createApp(config, { logger: createLogger({ logLevel: "warn" }) });
await app.start({ listen: false });
const DIMENSION = config.embedding.dimension;
const random = seeded(41);
const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

// SIFT-derived vectors: centred base vectors with noise, projected to the platform's dimension.
const base = readVectors(`${SIFT5K_DIR}/sift5k_base.fvecs`, "f");
const mean = (base[0] ?? []).map((_, d) => base.reduce((s, r) => s + (r[d] ?? 0), 0) / base.length);
const spread = Math.sqrt(
  base.reduce((s, r) => s + r.reduce((t, v, d) => t + (v - (mean[d] ?? 0)) ** 2, 0), 0) / base.length / mean.length,
);
const projection = Array.from({ length: DIMENSION }, () => Array.from({ length: mean.length }, gaussian));
const project = (v: readonly number[]) => projection.map((row) => row.reduce((sum, w, d) => sum + w * (v[d] ?? 0), 0));
const derived = (i: number) =>
  project((base[i % base.length] ?? []).map((v, d) => v - (mean[d] ?? 0) + 0.25 * spread * gaussian()));
const queryVectors = readVectors(`${SIFT5K_DIR}/sift5k_query.fvecs`, "f")
  .slice(0, Math.min(QUERIES, 100))
  .map((q) => project(q.map((v, d) => v - (mean[d] ?? 0))));
const claims = (await readBeirQueries(SCIFACT_DIR, "train")).queries.slice(0, QUERIES).map((q) => q.text);
const sentences = (await readScifactCorpus(Number.POSITIVE_INFINITY)).flatMap((d) => sentencesOf(d.text));

/** Nested groups: p1 holds 1% of the documents, p10 10%, p50 half; the rest are "group:rest". */
const accessOf = (r: number) => {
  const groups = [r < 0.01 && "group:p1", r < 0.1 && "group:p10", r < 0.5 && "group:p50"].filter(
    (g): g is string => typeof g === "string",
  );
  return groups.length > 0 ? groups : ["group:rest"];
};

// Earlier runs' collections (one interrupted, say) out of the graph and the postings first.
const admin = createAdminDbNode(config);
await dropBenchTenants(admin.db, "bench-acl-%");
const { tenantId, collectionId, owner } = await benchCollection(app, "acl");

const loadStarted = performance.now();
for (let start = 0; start < CHUNKS; start += BATCH) {
  const documents = Array.from({ length: Math.min(BATCH, CHUNKS - start) }, (_, j) => {
    const i = start + j;
    const picked = Array.from(
      { length: 4 + Math.floor(random() * 5) },
      () => sentences[Math.floor(random() * sentences.length)],
    );
    return { externalId: `d${i}`, text: picked.join(" "), access: accessOf(random()), vector: derived(i) };
  });
  await writeSyntheticDocuments(app, { tenantId, collectionId }, documents);
}
await compactCollection(
  app.router,
  config.retrieval.bm25,
  { collectionId, tenantId },
  { maxTerms: Number.MAX_SAFE_INTEGER },
);
await adminTransaction(app, (tx) => sql`ANALYZE chunks`.execute(tx));
console.log(
  `bench:acl — ${CHUNKS} chunks loaded and compacted in ${((performance.now() - loadStarted) / 1000).toFixed(0)} s`,
);

const READERS = [
  { name: "tenant-wide", principals: null },
  { name: "50%", principals: ["group:p50"] },
  { name: "10%", principals: ["group:p10"] },
  { name: "1%", principals: ["group:p1"] },
] as const;
const index = vectorIndexOf(config);
// The claims' query embeddings cached first, so that no reader pays for them and another not.
for (const claim of claims)
  await app.search.search(owner, { query: claim, collections: ["acl"], mode: "hybrid", k: K }, null);
const rows: string[] = [];
let unfiltered = { vector: 0, bm25: 0, hybrid: 0 };
for (const reader of READERS) {
  const principals = reader.principals;
  const scope: SearchScope = {
    tenantId,
    collectionIds: [collectionId],
    language: "english",
    documentIds: null,
    filter: undefined,
    principals,
  };
  const read = <T>(work: Parameters<typeof app.router.read<T>>[1], settings?: Record<string, string>) =>
    app.router.read({ tenantId, principals, settings }, work).then((r) => r.value);
  const allowed = await read((tx) => countFilteredChunks(tx, scope, CHUNKS));
  // The paths the search service takes for this reader (its count is capped; the decision is the same).
  const plan = readPlan(allowed, principals !== null, config.retrieval);
  const selective = plan.vector === "exact";

  const vectorMs: number[] = [];
  const recalls: number[] = [];
  for (const q of queryVectors) {
    const started = performance.now();
    const hits = await read(
      (tx) => (selective ? vectorSearchExact(tx, scope, q, K) : vectorSearchIndexed(tx, scope, q, K, index)),
      selective ? undefined : hnswSettings(config.retrieval.efSearch),
    );
    vectorMs.push(performance.now() - started);
    const exact = new Set((await read((tx) => vectorSearchExact(tx, scope, q, K))).map((h) => h.chunkId));
    recalls.push(hits.filter((h) => exact.has(h.chunkId)).length / Math.max(1, Math.min(K, exact.size)));
  }
  const bm25Ms: number[] = [];
  let identical = 0;
  for (const [n, claim] of claims.entries()) {
    const started = performance.now();
    const scored = plan.bm25 === "filtered";
    const served = await read((tx) => bm25Search(tx, scope, claim, K, config.retrieval.bm25, scored));
    bm25Ms.push(performance.now() - started);
    if (n >= AGREEMENT) continue;
    // Checked against the other exact path: early termination, or every allowed chunk scored.
    const other = await read((tx) => bm25Search(tx, scope, claim, K, config.retrieval.bm25, !scored));
    const same =
      served.hits.length === other.hits.length &&
      served.hits.every((h, i) => Math.abs(h.score - (other.hits[i]?.score ?? Number.NaN)) < 1e-9);
    if (same) identical++;
  }
  const hybridMs: number[] = [];
  const requester: Principal = { ...owner, principals: reader.principals, owner: null };
  for (const claim of claims) {
    const outcome = await app.search.search(
      requester,
      { query: claim, collections: ["acl"], mode: "hybrid", k: K },
      null,
    );
    hybridMs.push(outcome.timings.total);
  }
  const p95 = { vector: percentile(vectorMs, 95), bm25: percentile(bm25Ms, 95), hybrid: percentile(hybridMs, 95) };
  if (reader.principals === null) unfiltered = p95;
  const ratio = (leg: keyof typeof p95) => (unfiltered[leg] > 0 ? `${(p95[leg] / unfiltered[leg]).toFixed(2)}×` : "–");
  const meanRecall = recalls.reduce((s, r) => s + r, 0) / recalls.length;
  rows.push(
    `${reader.name.padEnd(12)} ${String(allowed).padStart(7)} ${selective ? "exact" : "hnsw "} ${plan.bm25.padEnd(8)}  ` +
      `vector p50 ${formatMs(percentile(vectorMs, 50))} p95 ${formatMs(p95.vector)} (${ratio("vector")}) recall@10 ${meanRecall.toFixed(3)}  ` +
      `bm25 p50 ${formatMs(percentile(bm25Ms, 50))} p95 ${formatMs(p95.bm25)} (${ratio("bm25")}) identical ${identical}/${AGREEMENT}  ` +
      `hybrid p50 ${formatMs(percentile(hybridMs, 50))} p95 ${formatMs(p95.hybrid)} (${ratio("hybrid")})`,
  );
  console.log(rows.at(-1));
}
console.log(
  "targets: vector recall@10 ≥ 0.95 at every selectivity; BM25 identical to the exhaustive filtered top 10 (the other exact path) on every sampled query; p95 ≤ 2× the tenant-wide p95 at 10% and 50%",
);
await sql`DELETE FROM tenants WHERE id = ${tenantId}`.execute(admin.db);
await closeDbNode(admin);
await app.stop();
