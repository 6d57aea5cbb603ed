import type OpenAI from "openai";
import pLimit from "p-limit";
import type { Config } from "../config.ts";
import type { InferenceHistogram } from "./inference-metrics.ts";
import { createOpenAiClient, type InferenceTarget } from "./openai-client.ts";
import { upstreamError } from "./upstream-error.ts";

/** The backend answered with vectors of another size than the database holds: never retried. */
export class EmbeddingDimensionError extends Error {
  override readonly name = "EmbeddingDimensionError";
}

/**
 * Embeds texts through any OpenAI-compatible /v1/embeddings endpoint: batched, with bounded
 * concurrency across batches. Transient failures (connection errors, 408/409/429/5xx) are retried by
 * the openai client with exponential backoff and jitter, `maxRetries` times.
 */
export class EmbeddingClient {
  readonly #client: OpenAI;
  readonly #model: string;
  readonly #dimension: number;
  readonly #batchSize: number;
  readonly #limit: ReturnType<typeof pLimit>;

  readonly #seconds: InferenceHistogram | undefined;

  constructor(target: InferenceTarget, config: Pick<Config, "embedding" | "inference">, seconds?: InferenceHistogram) {
    this.#seconds = seconds;
    this.#client = createOpenAiClient(target, config);
    this.#model = config.embedding.model;
    this.#dimension = config.embedding.dimension;
    this.#batchSize = config.embedding.batchSize;
    this.#limit = pLimit(config.embedding.concurrency);
  }

  async embed(texts: readonly string[]): Promise<number[][]> {
    const batches: string[][] = [];
    for (let i = 0; i < texts.length; i += this.#batchSize) batches.push(texts.slice(i, i + this.#batchSize));
    try {
      const results = await Promise.all(batches.map((batch) => this.#limit(() => this.#embedBatch(batch))));
      return results.flat();
    } catch (error) {
      throw error instanceof EmbeddingDimensionError ? error : upstreamError(error);
    }
  }

  async #embedBatch(batch: string[]): Promise<number[][]> {
    const end = this.#seconds?.startTimer({ call: "embeddings" });
    const response = await this.#client.embeddings.create({ model: this.#model, input: batch }).finally(() => end?.());
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
