import { locationJson } from "../retrieval/chunk-location.ts";
import { Hono, type MiddlewareHandler } from "hono";
import { z } from "zod";
import { searchFilterSchema } from "../retrieval/filters.ts";
import type { SearchHit, SearchService } from "../retrieval/search.service.ts";
import { rerankHeader } from "./rerank-outcome.ts";
import type { Scope } from "../tenancy/principal.ts";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import { readConsistencyToken } from "./consistency.ts";
import { statusOf } from "./error-handler.ts";
import type { AppEnv } from "./context.ts";
import { collectionName, searchMode } from "../request-fields.ts";
import { validate } from "./validation.ts";
import { NO_NUL_MESSAGE, noNul } from "../request-fields.ts";
import { documented } from "./route-docs.ts";

const MAX_QUERY_CHARS = 10_000;

const searchBody = z
  .object({
    query: z
      .string()
      .trim()
      .min(1, "must not be empty")
      .max(MAX_QUERY_CHARS, `at most ${MAX_QUERY_CHARS} characters`)
      .refine(noNul, NO_NUL_MESSAGE),
    collection: collectionName.optional(),
    collections: z.array(collectionName).min(1).max(20).optional(),
    mode: searchMode.default("hybrid"),
    k: z.number().int().min(1, "k must be at least 1").max(100, "k must be at most 100").default(10),
    filter: searchFilterSchema.optional(),
    weights: z
      .object({ vector: z.number().min(0).max(100).optional(), bm25: z.number().min(0).max(100).optional() })
      .strict()
      .optional(),
    fusion: z.enum(["rrf", "weighted"]).optional(),
    candidates: z.number().int().min(1).max(1000).optional(),
    ef_search: z.number().int().min(1).max(1000).optional(),
    rerank: z.boolean().optional(),
    rerank_candidates: z
      .number()
      .int()
      .min(1, "rerank_candidates must be at least 1")
      .max(200, "rerank_candidates must be at most 200")
      .optional(),
    explain: z.boolean().default(false),
  })
  .strict()
  .refine((b) => (b.collection === undefined) !== (b.collections === undefined), {
    message: "give exactly one of collection or collections",
    path: ["collection"],
  });

type SearchBody = z.infer<typeof searchBody>;

function hitJson(hit: SearchHit, explain: boolean) {
  const { chunk } = hit;
  return {
    chunk_id: chunk.id,
    document_id: chunk.documentId,
    external_id: chunk.externalId,
    collection: chunk.collection,
    title: chunk.title,
    heading_path: chunk.headingPath,
    location: locationJson(chunk.location, chunk.title ?? chunk.externalId),
    content: chunk.content,
    char_start: chunk.charStart,
    char_end: chunk.charEnd,
    metadata: chunk.metadata,
    score: hit.score,
    ...(hit.rerank ? { rerank_score: hit.rerank.score } : {}),
    ...(explain ? { explain: { ...hit.legs, fused: { score: hit.score }, rerank: hit.rerank } } : {}),
  };
}

function toSearchRequest(body: SearchBody) {
  return {
    query: body.query,
    collections: body.collections ?? [body.collection ?? ""],
    mode: body.mode,
    k: body.k,
    filter: body.filter,
    weights: body.weights,
    fusion: body.fusion,
    candidates: body.candidates,
    efSearch: body.ef_search,
    rerank: body.rerank,
    rerankCandidates: body.rerank_candidates,
  };
}

export function searchRoutes(
  service: SearchService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  events: EventRecorder,
): Hono<AppEnv> {
  return new Hono<AppEnv>().post(
    "/v1/search",
    documented(
      "Hybrid, vector or BM25 search, reranked when a reranker is configured (X-Rerank: applied, or fallback with the reason when the fused order was served)",
      { consistent: true, responses: { 200: "Ranked chunks" } },
    ),
    auth("read"),
    validate("json", searchBody),
    async (c) => {
      const body = c.req.valid("json");
      const started = performance.now();
      const principal = c.get("principal");
      const usage = {
        collection: body.collection ?? body.collections?.join(","),
        query: body.query,
        mode: body.mode,
        k: body.k,
      };
      const record = (httpStatus: number, payload: Record<string, unknown>) =>
        events.record({
          tenantId: principal.tenantId,
          kind: "search",
          requestId: c.get("requestId"),
          httpStatus,
          latencyMs: performance.now() - started,
          payload: { ...usage, ...payload },
        });
      let outcome: Awaited<ReturnType<SearchService["search"]>>;
      try {
        outcome = await service.search(principal, toSearchRequest(body), readConsistencyToken(c));
      } catch (error) {
        record(statusOf(error), {});
        throw error;
      }
      record(200, {
        served_by: outcome.node,
        vector_path: outcome.vectorPath,
        timings_ms: outcome.timings,
        rerank: outcome.rerank.status,
        results: outcome.hits.map((hit, i) => ({ chunk_id: hit.chunkId, rank: i + 1, score: hit.score })),
      });
      c.header("X-Served-By", outcome.node);
      const rerank = rerankHeader(outcome.rerank);
      if (rerank) c.header("X-Rerank", rerank);
      return c.json({
        mode: body.mode,
        results: outcome.hits.map((hit) => hitJson(hit, body.explain)),
        served_by: outcome.node,
        vector_path: outcome.vectorPath,
        rerank: outcome.rerank,
        timings_ms: outcome.timings,
      });
    },
  );
}
