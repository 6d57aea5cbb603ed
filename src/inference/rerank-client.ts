import { BrokenCircuitError, circuitBreaker, ConsecutiveBreaker, handleAll } from "cockatiel";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { InferenceHistogram } from "./inference-metrics.ts";
import { SpanKind, TRACING_OFF, type Tracing } from "../tracing.ts";
import type { InferenceTarget } from "./openai-client.ts";

export type RerankOptions = NonNullable<Config["rerank"]>;

/** Why the reranker's order could not be used: the search then keeps the fused order and says so. */
export type RerankFailureReason = "timeout" | "unreachable" | "upstream_error" | "bad_response" | "breaker_open";

export class RerankFailure extends Error {
  override readonly name = "RerankFailure";
  constructor(
    readonly reason: RerankFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A passage's place in the reranker's answer: its index in the passages sent, and its relevance (null: left unscored). */
export interface RerankedPassage {
  readonly index: number;
  readonly score: number | null;
}

const score = z.number().refine(Number.isFinite, "a relevance score must be a finite number");
const cohereAnswer = z.object({ results: z.array(z.object({ index: z.number().int(), relevance_score: score })) });
const teiAnswer = z.array(z.object({ index: z.number().int(), score }));

/**
 * Orders passages by a cross-encoder behind a `/rerank` endpoint: the shape Cohere, Jina, vLLM and
 * Infinity share, or Hugging Face TEI's. Its own time budget and a breaker that, after consecutive
 * failures, skips it for a cool-down instead of making every search wait for a dead reranker.
 */
export class RerankClient {
  readonly #url: string;
  readonly #fetch: NonNullable<InferenceTarget["fetch"]>;
  readonly #options: RerankOptions;
  readonly #breaker;
  readonly #seconds: InferenceHistogram | undefined;
  readonly #tracing: Tracing;

  /** `backend`: the inference backend, used when no reranker URL of its own is configured. */
  constructor(
    backend: InferenceTarget,
    options: RerankOptions,
    seconds?: InferenceHistogram,
    tracing: Tracing = TRACING_OFF,
  ) {
    this.#tracing = tracing;
    this.#url = `${(options.url ?? backend.baseURL).replace(/\/+$/, "")}/rerank`;
    this.#fetch = options.url === null && backend.fetch ? backend.fetch : fetch;
    this.#options = options;
    this.#seconds = seconds;
    this.#breaker = circuitBreaker(handleAll, {
      halfOpenAfter: options.breaker.cooldownMs,
      breaker: new ConsecutiveBreaker(options.breaker.failures),
    });
  }

  /** The passages' indexes, most relevant first; every index sent appears once (any the reranker left out follow, in their order). */
  async rerank(query: string, passages: readonly string[]): Promise<RerankedPassage[]> {
    if (passages.length === 0) return [];
    const end = this.#seconds?.startTimer({ call: "rerank" });
    const attributes = {
      "gen_ai.operation.name": "rerank",
      "gen_ai.request.model": this.#options.model,
      "pgrag.inference.inputs": passages.length,
    };
    try {
      return await this.#tracing.span(
        `rerank ${this.#options.model}`,
        attributes,
        () => this.#breaker.execute(() => this.#ask(query, passages)),
        { kind: SpanKind.CLIENT },
      );
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new RerankFailure("breaker_open", "the reranker failed repeatedly and is skipped for a while", {
          cause: error,
        });
      }
      throw error;
    } finally {
      end?.();
    }
  }

  async #ask(query: string, passages: readonly string[]): Promise<RerankedPassage[]> {
    const body =
      this.#options.api === "tei"
        ? { query, texts: passages, raw_scores: false, truncate: true }
        : { model: this.#options.model, query, documents: passages, top_n: passages.length };
    let response: Response;
    let text: string;
    try {
      // The budget covers the answer's body too: the signal aborts its reading.
      response = await this.#fetch(this.#url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${this.#options.apiKey}`,
          ...this.#tracing.outgoing(),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      if ((error as Error).name === "TimeoutError") {
        throw new RerankFailure("timeout", `the reranker did not answer within ${this.#options.timeoutMs} ms`, {
          cause: error,
        });
      }
      throw new RerankFailure("unreachable", `the reranker is unreachable: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!response.ok) {
      throw new RerankFailure("upstream_error", `the reranker answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return orderOf(this.#parse(text), passages.length);
  }

  #parse(text: string): RerankedPassage[] {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new RerankFailure("bad_response", "the reranker's answer is not JSON");
    }
    if (this.#options.api === "tei") {
      const parsed = teiAnswer.safeParse(json);
      if (!parsed.success) throw new RerankFailure("bad_response", `the reranker's answer: ${parsed.error.message}`);
      return parsed.data;
    }
    const parsed = cohereAnswer.safeParse(json);
    if (!parsed.success) throw new RerankFailure("bad_response", `the reranker's answer: ${parsed.error.message}`);
    return parsed.data.results.map((r) => ({ index: r.index, score: r.relevance_score }));
  }
}

/** The reranker's scores as an order of every passage: indexes checked, best first. */
export function orderOf(scored: readonly RerankedPassage[], count: number): RerankedPassage[] {
  const seen = new Set<number>();
  for (const { index } of scored) {
    if (index < 0 || index >= count || seen.has(index)) {
      throw new RerankFailure("bad_response", `the reranker's answer names passage ${index} of ${count}, or twice`);
    }
    seen.add(index);
  }
  const ranked: RerankedPassage[] = [...scored].sort((a, b) => (b.score ?? 0) - (a.score ?? 0) || a.index - b.index);
  // A reranker may return fewer than asked: those it left out keep their fused order, after the rest.
  for (let index = 0; index < count; index++) {
    if (!seen.has(index)) ranked.push({ index, score: null });
  }
  return ranked;
}
