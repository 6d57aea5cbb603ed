/** BEIR's retrieval metrics over document ids, graded relevance from qrels. */
export type Qrels = ReadonlyMap<string, ReadonlyMap<string, number>>;

export function ndcgAt(ranked: readonly string[], relevance: ReadonlyMap<string, number>, k: number): number {
  const gain = (rel: number, index: number) => rel / Math.log2(index + 2);
  let dcg = 0;
  ranked.slice(0, k).forEach((doc, i) => {
    dcg += gain(relevance.get(doc) ?? 0, i);
  });
  const ideal = [...relevance.values()].sort((a, b) => b - a).slice(0, k);
  const idcg = ideal.reduce((sum, rel, i) => sum + gain(rel, i), 0);
  return idcg > 0 ? dcg / idcg : 0;
}

export function recallAt(ranked: readonly string[], relevance: ReadonlyMap<string, number>, k: number): number {
  const relevant = [...relevance.entries()].filter(([, rel]) => rel > 0).map(([doc]) => doc);
  if (relevant.length === 0) return 0;
  const top = new Set(ranked.slice(0, k));
  return relevant.filter((doc) => top.has(doc)).length / relevant.length;
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
