import type { Kysely } from "kysely";
import { LRUCache } from "lru-cache";
import { Histogram, type Registry } from "prom-client";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import type { Router } from "../db/router.ts";
import { InvalidRequestError, NotFoundError } from "../errors.ts";
import { RerankFailure, type RerankFailureReason, type RerankClient } from "../inference/rerank-client.ts";
import { type Principal, readerOf } from "../tenancy/principal.ts";
import type { SearchFilter } from "./filters.ts";
import { type FusedHit, type FusionMethod, fuse, type Leg, type LegHit } from "./fusion.ts";
import { bm25Search } from "./bm25-search.ts";
import { countCap, type ReadPlan, readPlan } from "./read-plan.ts";
import {
  type ChunkDetails,
  chunkDetails,
  collectionChunkCount,
  collectionsByName,
  countFilteredChunks,
  documentIdsByExternalId,
  hnswSettings,
  isFiltered,
  type SearchScope,
  type VectorIndex,
  vectorSearchExact,
  vectorSearchIndexed,
} from "./search.repository.ts";

/** The vector index the platform was migrated with, and how the binary one is searched. */
export function vectorIndexOf(config: Pick<Config, "embedding" | "retrieval">): VectorIndex {
  return {
    type: config.embedding.indexType,
    dimension: config.embedding.dimension,
    binaryOversampling: config.retrieval.binaryOversampling,
  };
}

export type SearchMode = "hybrid" | "vector" | "bm25";

export interface SearchRequest {
  readonly query: string;
  readonly collections: readonly string[];
  readonly mode: SearchMode;
  readonly k: number;
  readonly filter?: SearchFilter;
  readonly weights?: Partial<Record<Leg, number>>;
  readonly fusion?: "rrf" | "weighted";
  /** Per-leg candidates before fusion; default max(4k, 40). */
  readonly candidates?: number;
  readonly efSearch?: number;
  /** Rerank the fused candidates (default: when a reranker is configured). */
  readonly rerank?: boolean;
  /** How many fused candidates the reranker orders (default PGRAG_RERANK_CANDIDATES). */
  readonly rerankCandidates?: number;
}

/** The rerank stage as configured: its client and how many fused candidates it orders by default. */
export interface RerankStage {
  readonly client: RerankClient;
  readonly candidates: number;
}

export type RerankOutcome =
  | { readonly status: "off" }
  | { readonly status: "applied"; readonly candidates: number }
  | { readonly status: "fallback"; readonly reason: RerankFailureReason; readonly message: string };

export interface SearchHit extends FusedHit {
  readonly chunk: ChunkDetails;
  /** The hit's place in the reranker's order and its relevance score; null when not reranked. */
  readonly rerank: { readonly rank: number; readonly score: number | null } | null;
}

export interface SearchOutcome {
  readonly hits: SearchHit[];
  readonly node: string;
  /** Which vector path ran: the HNSW index or an exact scan of a small filtered set. */
  readonly vectorPath: "index" | "exact" | null;
  readonly timings: Record<"embed" | "vector" | "bm25" | "fetch" | "rerank" | "total", number>;
  readonly rerank: RerankOutcome;
}

/** Embeds a query of this tenant now (the interactive lane of the embedding backend). */
type Embed = (texts: readonly string[], tenantId: string) => Promise<number[][]>;

/**
 * Hybrid retrieval: the vector and BM25 legs on one replica, fused, with each hit's chunk; then,
 * with no database connection held, the top fused candidates reordered by the reranker if there is one.
 */
export class SearchService {
  readonly #router: Router;
  readonly #embed: Embed;
  readonly #options: Config["retrieval"];
  readonly #vectorIndex: VectorIndex;
  readonly #rerank: RerankStage | null;
  readonly #queryEmbeddings = new LRUCache<string, number[]>({ max: 2_000 });
  readonly #collections = new LRUCache<string, { id: string; name: string; language: string }[]>({
    max: 10_000,
    ttl: 60_000,
  });
  readonly #chunkCounts = new LRUCache<string, number>({ max: 10_000, ttl: 5_000 });

  readonly #stageSeconds: Histogram<"stage" | "mode">;

  constructor(
    router: Router,
    embed: Embed,
    options: Config["retrieval"],
    vectorIndex: VectorIndex,
    rerank: RerankStage | null,
    registry: Registry,
  ) {
    this.#router = router;
    this.#rerank = rerank;
    this.#embed = embed;
    this.#options = options;
    this.#vectorIndex = vectorIndex;
    this.#stageSeconds = new Histogram({
      name: "pgrag_search_stage_seconds",
      help: "Search time by stage (embed, vector, bm25, fetch, rerank, total) and mode",
      labelNames: ["stage", "mode"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
  }

  /** Chunks by id, with their documents and locations: the tenant's own only (others are absent). */
  async chunks(
    principal: Principal,
    ids: readonly string[],
    token: ConsistencyToken | null,
  ): Promise<Map<string, ChunkDetails>> {
    const { value } = await this.#router.read({ token, ...readerOf(principal) }, (db) =>
      chunkDetails(db, principal.tenantId, ids),
    );
    return value;
  }

  async search(principal: Principal, request: SearchRequest, token: ConsistencyToken | null): Promise<SearchOutcome> {
    const started = performance.now();
    const timings = { embed: 0, vector: 0, bm25: 0, fetch: 0, rerank: 0, total: 0 };
    const rerank = this.#rerankDepth(request);
    // Fused hits kept: k, or as many as the reranker orders.
    const depth = Math.max(request.k, rerank ?? 0);
    const useVector = request.mode !== "bm25";
    const useBm25 = request.mode !== "vector";
    const embedding = useVector
      ? await this.#timed(timings, "embed", () => this.#queryEmbedding(request.query, principal.tenantId))
      : null;
    const candidates = request.candidates ?? Math.max(4 * request.k, 40, depth);
    const legLimit = request.mode === "hybrid" ? candidates : depth;
    let vectorPath: SearchOutcome["vectorPath"] = null;

    // A tenant's read runs in one transaction: local HNSW settings, one snapshot for both legs.
    const settings = embedding ? hnswSettings(request.efSearch ?? this.#options.efSearch) : undefined;
    const { value, node } = await this.#router.read({ token, ...readerOf(principal), settings }, async (tx) => {
      const scope = await this.#scope(tx, principal, request);
      const legs: Partial<Record<Leg, LegHit[]>> = {};
      // Few chunks left by the filters: the legs score those chunks themselves.
      const plan = embedding || isFiltered(scope) ? await this.#plan(tx, scope) : null;
      if (embedding) {
        const exact = plan?.vector === "exact";
        vectorPath = exact ? "exact" : "index";
        legs.vector = await this.#timed(timings, "vector", () =>
          exact
            ? vectorSearchExact(tx, scope, embedding, legLimit)
            : vectorSearchIndexed(tx, scope, embedding, legLimit, this.#vectorIndex),
        );
      }
      if (useBm25) {
        const bm25 = await this.#timed(timings, "bm25", () =>
          bm25Search(tx, scope, request.query, legLimit, this.#options.bm25, plan?.bm25 === "filtered"),
        );
        legs.bm25 = bm25.hits;
      }
      const fusion: FusionMethod =
        (request.fusion ?? this.#options.fusion) === "weighted"
          ? { method: "weighted" }
          : { method: "rrf", k: this.#options.rrfK };
      const weights = {
        vector: request.weights?.vector ?? this.#options.weights.vector,
        bm25: request.weights?.bm25 ?? this.#options.weights.bm25,
      };
      const fused = fuse(legs, weights, fusion, depth);
      const details = await this.#timed(timings, "fetch", () =>
        chunkDetails(
          tx,
          principal.tenantId,
          fused.map((h) => h.chunkId),
        ),
      );
      return fused.flatMap((hit) => {
        const chunk = details.get(hit.chunkId);
        return chunk ? [{ ...hit, chunk, rerank: null }] : [];
      });
    });
    let hits: SearchHit[] = value;
    let outcome: RerankOutcome = { status: "off" };
    const stage = this.#rerank;
    if (rerank !== null && stage) {
      const reranked = await this.#timed(timings, "rerank", () => reorder(stage.client, request.query, hits, rerank));
      hits = reranked.hits;
      outcome = reranked.outcome;
    }
    timings.total = performance.now() - started;
    for (const [stage, ms] of Object.entries(timings)) {
      if (ms > 0) this.#stageSeconds.observe({ stage, mode: request.mode }, ms / 1000);
    }
    return { hits: hits.slice(0, request.k), node, vectorPath, timings, rerank: outcome };
  }

  /** How many fused candidates to rerank, or null for none. */
  #rerankDepth(request: SearchRequest): number | null {
    if (request.rerank === false) return null;
    if (!this.#rerank) {
      if (request.rerank === true || request.rerankCandidates !== undefined) {
        throw new InvalidRequestError("no reranker is configured (PGRAG_RERANK_MODEL): leave rerank out");
      }
      return null;
    }
    return request.rerankCandidates ?? this.#rerank.candidates;
  }

  async #scope(tx: Kysely<Database>, principal: Principal, request: SearchRequest): Promise<SearchScope> {
    const rows = await this.#collectionRows(tx, principal.tenantId, request.collections);
    const missing = request.collections.filter((name) => !rows.some((r) => r.name === name));
    if (missing.length > 0) throw new NotFoundError(`no collection ${missing.map((m) => `"${m}"`).join(", ")}`);
    const languages = new Set(rows.map((r) => r.language));
    if (languages.size > 1) {
      throw new InvalidRequestError(
        `the collections use different text-search languages (${[...languages].join(", ")}); search them separately`,
      );
    }
    let documentIds: string[] | null = null;
    if (request.filter?.document_ids) {
      documentIds = await documentIdsByExternalId(tx, {
        tenantId: principal.tenantId,
        collectionIds: rows.map((r) => r.id),
        externalIds: request.filter.document_ids,
      });
    }
    return {
      tenantId: principal.tenantId,
      collectionIds: rows.map((r) => r.id),
      language: rows[0]?.language ?? "english",
      documentIds,
      filter: request.filter?.metadata ? request.filter : undefined,
      principals: principal.principals,
    };
  }

  /**
   * Collections are never renamed or deleted and their language never changes, so a found
   * (tenant, names) → ids lookup can be remembered; a name not found is always looked up again.
   */
  async #collectionRows(tx: Kysely<Database>, tenantId: string, names: readonly string[]) {
    const key = `${tenantId}:${[...names].sort().join("\u0000")}`;
    const cached = this.#collections.get(key);
    if (cached) return cached;
    const rows = await collectionsByName(tx, tenantId, names);
    if (names.every((name) => rows.some((r) => r.name === name))) this.#collections.set(key, rows);
    return rows;
  }

  /**
   * Each leg's path, from how many chunks pass. Only the choice depends on the count, and every path
   * is exact about what it returns: a count a few seconds old is good enough where it can be reused
   * — the collections' own, and a requester's access list without other filters (a user's searches
   * repeat it) — which saves a round trip, or a count of thousands of rows, per query.
   */
  async #plan(tx: Kysely<Database>, scope: SearchScope): Promise<ReadPlan> {
    const collections = scope.collectionIds.join(",");
    if (!isFiltered(scope)) {
      const total = await this.#remembered(collections, () => collectionChunkCount(tx, scope.collectionIds));
      return readPlan(total, false, this.#options);
    }
    const count = () => countFilteredChunks(tx, scope, countCap(this.#options));
    const accessOnly = scope.filter === undefined && scope.documentIds === null;
    const allowed = accessOnly
      ? await this.#remembered(`${collections}:${scope.principals?.join(",") ?? ""}`, count)
      : await count();
    return readPlan(allowed, true, this.#options);
  }

  async #remembered(key: string, count: () => Promise<number>): Promise<number> {
    let n = this.#chunkCounts.get(key);
    if (n === undefined) {
      n = await count();
      this.#chunkCounts.set(key, n);
    }
    return n;
  }

  async #queryEmbedding(query: string, tenantId: string): Promise<number[]> {
    const cached = this.#queryEmbeddings.get(query);
    if (cached) return cached;
    const [embedding] = await this.#embed([query], tenantId);
    if (!embedding) throw new Error("the embedding backend returned no vector for the query");
    this.#queryEmbeddings.set(query, embedding);
    return embedding;
  }

  async #timed<T>(timings: Record<string, number>, stage: string, run: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await run();
    } finally {
      timings[stage] = (timings[stage] ?? 0) + performance.now() - start;
    }
  }
}

/**
 * The first `count` hits in the reranker's order, each with its rank and score there; the rest
 * after them in fused order. A reranker that fails,
 * times out, answers nonsense or has its breaker open never fails the search: the fused order is
 * kept and the outcome says why.
 */
async function reorder(
  client: RerankClient,
  query: string,
  hits: readonly SearchHit[],
  count: number,
): Promise<{ hits: SearchHit[]; outcome: RerankOutcome }> {
  const candidates = hits.slice(0, count);
  try {
    const order = await client.rerank(
      query,
      candidates.map((hit) => hit.chunk.content),
    );
    const reranked = order.flatMap(({ index, score }, at) => {
      const hit = candidates[index];
      return hit ? [{ ...hit, rerank: { rank: at + 1, score } }] : [];
    });
    return {
      hits: [...reranked, ...hits.slice(count)],
      outcome: { status: "applied", candidates: candidates.length },
    };
  } catch (error) {
    const failure =
      error instanceof RerankFailure ? error : new RerankFailure("upstream_error", (error as Error).message);
    return { hits: [...hits], outcome: { status: "fallback", reason: failure.reason, message: failure.message } };
  }
}
