import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { createInterface } from "node:readline";
import type { Config } from "../config.ts";
import type { Router } from "../db/router.ts";
import type { IngestService } from "../ingest/ingest.service.ts";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import type { SearchMode, SearchService } from "../retrieval/search.service.ts";
import { adminTransaction } from "../tenancy/admin-transaction.ts";
import { createApiKey, ensureTenant } from "../tenancy/api-keys.ts";
import type { Principal } from "../tenancy/principal.ts";
import { jsonLines } from "./datasets.ts";
import { mean, ndcgAt, percentile, type Qrels, recallAt } from "./metrics.ts";

interface BeirDocument {
  _id: string;
  title?: string;
  text: string;
}

async function readQrels(path: string): Promise<Map<string, Map<string, number>>> {
  const qrels = new Map<string, Map<string, number>>();
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let header = true;
  for await (const line of lines) {
    if (header) {
      header = false;
      if (/^query-id/i.test(line)) continue;
    }
    const [query, doc, score] = line.split("\t");
    if (!query || !doc) continue;
    const judged = qrels.get(query) ?? new Map<string, number>();
    judged.set(doc, Number(score ?? 1));
    qrels.set(query, judged);
  }
  return qrels;
}

export interface EvalOptions {
  readonly dataset: string;
  readonly split: string;
  readonly modes: readonly SearchMode[];
  readonly queryLimit?: number;
  readonly log: (line: string) => void;
}

export interface ModeResult {
  readonly mode: SearchMode;
  /** Whether the reranker reordered the fused candidates. */
  readonly reranked: boolean;
  readonly ndcg10: number;
  readonly recall100: number;
  /** Latency of the API's default query (k = 10), embedding the query included. */
  readonly p50Ms: number;
  readonly p95Ms: number;
  /** Latency at the evaluation's depth (k = 200 chunks, for Recall@100 over documents). */
  readonly deepP50Ms: number;
  readonly deepP95Ms: number;
  readonly queries: number;
}

/** What loading and evaluating need of the platform: its services, and the owner's connection for tenants. */
export interface EvaluationPlatform {
  readonly config: Config;
  readonly router: Router;
  readonly ingest: IngestService;
  readonly search: SearchService;
}

export interface LoadedCollection {
  readonly principal: Principal;
  /** A fresh API key of the dataset's tenant, for driving the HTTP API. */
  readonly apiKey: string;
  readonly collection: string;
  /** Covers every document written and processed: reads with it see the whole collection ready. */
  readonly token: ConsistencyToken | null;
}

/**
 * Loads a BEIR-format corpus into a tenant and collection of its own through the ingestion service
 * (unchanged documents are no-ops, so a rerun is quick) and waits until every document is processed.
 * `limit` loads only the corpus's first documents.
 */
export async function loadBeirCollection(
  app: EvaluationPlatform,
  dataset: string,
  log: (line: string) => void,
  options: { limit?: number } = {},
): Promise<LoadedCollection> {
  const name = basename(dataset.replace(/\/+$/, "")).replace(/[^A-Za-z0-9_.-]/g, "-");
  // Tenants and keys are created as the schema owner, as the admin CLI does.
  const loaded = await adminTransaction(app, async (tx) => {
    const tenantId = await ensureTenant(tx, `eval-${name}`);
    const key = await createApiKey(tx, { tenantId, name: "eval", scopes: ["read", "write"] });
    const principal: Principal = { tenantId, keyId: key.id, scopes: ["read", "write"], principals: null, owner: null };
    return { principal, apiKey: key.key };
  });
  const { principal } = loaded;
  const collections = await app.ingest.listCollections(principal, null);
  if (!collections.value.some((c) => c.name === name)) {
    await app.ingest.createCollection(principal, {
      name,
      language: "english",
      chunking: { maxTokens: 512, overlapTokens: 48, minTokens: 64 },
    });
  }
  const started = performance.now();
  // Reads go to replicas: without the writes' token, a replica that has not replayed them yet
  // shows no pending documents and the collection would look ready before it is.
  let token: ConsistencyToken | null = null;
  let batch: BeirDocument[] = [];
  let total = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    ({ token } = await app.ingest.putDocuments(
      principal,
      name,
      batch.map((d) => ({
        externalId: d._id,
        content: d.title ? `${d.title}\n\n${d.text}` : d.text,
        contentType: "text/plain" as const,
        title: d.title ?? null,
      })),
    ));
    total += batch.length;
    batch = [];
  };
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  for await (const doc of jsonLines<BeirDocument>(`${dataset}/corpus.jsonl`)) {
    if (total + batch.length >= limit) break;
    batch.push(doc);
    if (batch.length === 500) await flush();
  }
  await flush();
  for (;;) {
    const { value, observed } = await app.ingest.listDocuments(principal, name, { status: "pending", limit: 1 }, token);
    // What this read saw (no pending document) is what later reads must see at least.
    token = observed ?? token;
    if (value.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  log(
    `corpus: ${total} documents in collection "${name}", ready after ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return { ...loaded, collection: name, token };
}

export async function readBeirQueries(
  dataset: string,
  split: string,
): Promise<{ queries: { _id: string; text: string }[]; qrels: Qrels }> {
  const qrels: Qrels = await readQrels(`${dataset}/qrels/${split}.tsv`);
  const queries: { _id: string; text: string }[] = [];
  for await (const q of jsonLines<{ _id: string; text: string }>(`${dataset}/queries.jsonl`)) {
    if (qrels.has(q._id)) queries.push(q);
  }
  return { queries, qrels };
}

/**
 * Runs every judged query of a BEIR folder in each mode through the search service and scores the
 * document rankings; with a reranker configured, each mode without it and then with it.
 */
export async function evaluateBeir(app: EvaluationPlatform, options: EvalOptions): Promise<ModeResult[]> {
  const { principal, collection: name, token } = await loadBeirCollection(app, options.dataset, options.log);
  const { queries, qrels } = await readBeirQueries(options.dataset, options.split);
  const judged = queries.slice(0, options.queryLimit ?? queries.length);
  const results: ModeResult[] = [];
  const rerankings = app.config.rerank ? [false, true] : [false];
  for (const mode of options.modes) {
    for (const rerank of rerankings) {
      results.push(await scoreMode(app, { principal, collection: name, token }, judged, qrels, mode, rerank));
    }
  }
  return results;
}

/**
 * Scores one retrieval mode on a loaded collection: first the query a client makes by default
 * (k = 10), whose latency is the one that matters (the query embedding not cached yet), then the deep
 * pass the quality is measured on. Chunks are mapped to their documents, each at its best chunk's rank.
 */
export async function scoreMode(
  app: Pick<EvaluationPlatform, "search">,
  loaded: Pick<LoadedCollection, "principal" | "collection" | "token">,
  judged: readonly { _id: string; text: string }[],
  qrels: Qrels,
  mode: SearchMode,
  rerank = false,
): Promise<ModeResult> {
  const { principal, collection, token } = loaded;
  const latencies: number[] = [];
  for (const query of judged) {
    const outcome = await app.search.search(
      principal,
      { query: query.text, collections: [collection], mode, k: 10, rerank },
      token,
    );
    latencies.push(outcome.timings.total);
  }
  const ndcgs: number[] = [];
  const recalls: number[] = [];
  const deepLatencies: number[] = [];
  for (const query of judged) {
    const outcome = await app.search.search(
      principal,
      { query: query.text, collections: [collection], mode, k: 200, candidates: 200, rerank },
      token,
    );
    deepLatencies.push(outcome.timings.total);
    const ranked: string[] = [];
    for (const hit of outcome.hits) if (!ranked.includes(hit.chunk.externalId)) ranked.push(hit.chunk.externalId);
    const relevance = qrels.get(query._id) ?? new Map();
    ndcgs.push(ndcgAt(ranked, relevance, 10));
    recalls.push(recallAt(ranked, relevance, 100));
  }
  return {
    mode,
    reranked: rerank,
    ndcg10: mean(ndcgs),
    recall100: mean(recalls),
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    deepP50Ms: percentile(deepLatencies, 50),
    deepP95Ms: percentile(deepLatencies, 95),
    queries: judged.length,
  };
}
