/**
 * Fusing the legs' ranked lists. A chunk missing from a leg contributes nothing from that leg (RRF)
 * or a normalised score of 0 (weighted), and keeps a null rank and score for it in `explain`.
 */
export type Leg = "vector" | "bm25";

export interface LegHit {
  readonly chunkId: string;
  /** Higher is better: cosine similarity for vector, BM25 score for bm25. */
  readonly score: number;
}

export interface FusedHit {
  readonly chunkId: string;
  readonly score: number;
  readonly legs: Record<Leg, { rank: number | null; score: number | null }>;
}

export type FusionMethod = { method: "rrf"; k: number } | { method: "weighted" };

function emptyLegs(): FusedHit["legs"] {
  return { vector: { rank: null, score: null }, bm25: { rank: null, score: null } };
}

/** Min-max normalisation per leg, so weights compare legs on the same 0–1 scale. */
function normalised(hits: readonly LegHit[]): Map<string, number> {
  const scores = hits.map((h) => h.score);
  const min = Math.min(...scores);
  const max = Math.max(...scores);
  return new Map(hits.map((h) => [h.chunkId, max > min ? (h.score - min) / (max - min) : 1]));
}

export function fuse(
  results: Partial<Record<Leg, readonly LegHit[]>>,
  weights: Record<Leg, number>,
  fusion: FusionMethod,
  k: number,
): FusedHit[] {
  const fused = new Map<string, { score: number; legs: FusedHit["legs"] }>();
  for (const leg of Object.keys(results) as Leg[]) {
    const hits = results[leg] ?? [];
    const norm = fusion.method === "weighted" ? normalised(hits) : undefined;
    hits.forEach((hit, index) => {
      const entry = fused.get(hit.chunkId) ?? { score: 0, legs: emptyLegs() };
      const rank = index + 1;
      entry.legs[leg] = { rank, score: hit.score };
      entry.score += weights[leg] * (fusion.method === "rrf" ? 1 / (fusion.k + rank) : (norm?.get(hit.chunkId) ?? 0));
      fused.set(hit.chunkId, entry);
    });
  }
  return [...fused.entries()]
    .map(([chunkId, entry]) => ({ chunkId, score: entry.score, legs: entry.legs }))
    .sort((a, b) => b.score - a.score || bestRank(a) - bestRank(b) || Number(a.chunkId) - Number(b.chunkId))
    .slice(0, k);
}

function bestRank(hit: FusedHit): number {
  return Math.min(hit.legs.vector.rank ?? Number.POSITIVE_INFINITY, hit.legs.bm25.rank ?? Number.POSITIVE_INFINITY);
}
