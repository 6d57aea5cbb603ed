import type { RerankOutcome } from "../retrieval/search.service.ts";

/** `applied`, or `fallback; reason=timeout` when the fused order was served instead; none without a reranker. */
export function rerankHeader(outcome: RerankOutcome): string | undefined {
  if (outcome.status === "off") return undefined;
  return outcome.status === "applied" ? "applied" : `fallback; reason=${outcome.reason}`;
}
