import type OpenAI from "openai";
import type { Registry } from "prom-client";
import type { Config } from "../config.ts";
import { SpanKind, TRACING_OFF, type Tracing } from "../tracing.ts";
import { AdmissionControl, type Priority } from "./admission.ts";
import type { InferenceHistogram } from "./inference-metrics.ts";
import { createOpenAiClient, type InferenceTarget } from "./openai-client.ts";
import { upstreamError } from "./upstream-error.ts";

/** The backend answered with vectors of another size than the database holds: never retried. */
export class EmbeddingDimensionError extends Error {
  override readonly name = "EmbeddingDimensionError";
}

const QUERIES_QUEUED = 1_000;

/** Who asks for embeddings: a query being answered now (interactive), or ingestion, imports and batch lines. */
export interface EmbeddingRequester {
  readonly tenantId: string;
  readonly priority: Priority;
}

/**
 * Embeds texts through any OpenAI-compatible /v1/embeddings endpoint: batched, at most
 * `embedding.concurrency` requests at once. A query's embedding goes ahead of background work
 * (ingestion, imports, batch lines), which may take all but one of the slots, and tenants take turns
 * within each class: a large ingestion or batch of one tenant cannot make another's searches wait
 * behind it. Transient failures (connection errors, 408/409/429/5xx) are retried by the openai
 * client with exponential backoff and jitter, `maxRetries` times.
 */
export class EmbeddingClient {
  readonly #client: OpenAI;
  readonly #model: string;
  readonly #dimension: number;
  readonly #batchSize: number;
  readonly #slots: AdmissionControl;
  readonly #seconds: InferenceHistogram | undefined;
  readonly #tracing: Tracing;

  constructor(
    target: InferenceTarget,
    config: Pick<Config, "embedding" | "inference" | "chat">,
    registry: Registry,
    seconds?: InferenceHistogram,
    tracing: Tracing = TRACING_OFF,
  ) {
    this.#seconds = seconds;
    this.#tracing = tracing;
    this.#client = createOpenAiClient(target, config);
    this.#model = config.embedding.model;
    this.#dimension = config.embedding.dimension;
    this.#batchSize = config.embedding.batchSize;
    const { concurrency } = config.embedding;
    this.#slots = new AdmissionControl(
      {
        maxConcurrent: concurrency,
        // A query's embedding is far cheaper than a chat answer: many may wait, each as long as a chat
        // request may (PGRAG_INFERENCE_QUEUE_WAIT_MS), then 429 rather than piling up.
        maxQueued: QUERIES_QUEUED,
        maxWaitMs: config.chat.scheduler.maxWaitMs,
        reservedForInteractive: concurrency > 1 ? 1 : 0,
        metricPrefix: "pgrag_embedding",
      },
      registry,
    );
  }

  async embed(texts: readonly string[], requester: EmbeddingRequester): Promise<number[][]> {
    const attributes = {
      "gen_ai.operation.name": "embeddings",
      "gen_ai.request.model": this.#model,
      "pgrag.inference.inputs": texts.length,
      "pgrag.inference.priority": requester.priority,
    };
    return this.#tracing.span(`embeddings ${this.#model}`, attributes, () => this.#embed(texts, requester), {
      kind: SpanKind.CLIENT,
    });
  }

  async #embed(texts: readonly string[], requester: EmbeddingRequester): Promise<number[][]> {
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += this.#batchSize) batches.push(texts.slice(i, i + this.#batchSize));
    try {
      const results = await Promise.all(
        batches.map(async (batch) => {
          const release = await this.#slots.acquire(requester.tenantId, { priority: requester.priority });
          try {
            return await this.#embedBatch(batch);
          } finally {
            release();
          }
        }),
      );
      return results.flat();
    } catch (error) {
      throw error instanceof EmbeddingDimensionError ? error : upstreamError(error);
    }
  }

  async #embedBatch(batch: string[]): Promise<number[][]> {
    const end = this.#seconds?.startTimer({ call: "embeddings" });
    const response = await this.#client.embeddings
      .create({ model: this.#model, input: batch }, { headers: this.#tracing.outgoing() })
      .finally(() => end?.());
    const vectors = [...response.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    if (vectors.length !== batch.length) {
      throw new Error(`the embedding backend returned ${vectors.length} vectors for ${batch.length} inputs`);
    }
    const wrong = vectors.find((v) => v.length !== this.#dimension);
    if (wrong) {
      throw new EmbeddingDimensionError(
        `the embedding backend returned vectors of dimension ${wrong.length}, but the database holds dimension ${this.#dimension} (model "${this.#model}")`,
      );
    }
    return vectors;
  }
}
