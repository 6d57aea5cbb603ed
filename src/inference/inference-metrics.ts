import { Histogram, type Registry } from "prom-client";

export type InferenceHistogram = Histogram<"call">;

/** Upstream inference latency: embeddings requests, chat time to first token, whole chat answers, rerank requests. */
export function createInferenceHistogram(registry: Registry): InferenceHistogram {
  return new Histogram({
    name: "pgrag_inference_seconds",
    help: "Inference backend latency by call (embeddings, chat_first_token, chat_total, rerank)",
    labelNames: ["call"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
}
