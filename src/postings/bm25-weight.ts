import { type RawBuilder, sql } from "kysely";

/** Okapi BM25's two parameters: term-frequency saturation and length normalisation. */
export interface Bm25Parameters {
  readonly k1: number;
  readonly b: number;
}

/**
 * BM25's term weight before idf and (k1 + 1), tf / (tf + k1·(1 − b + b·dl/avgdl)), written as
 * tf / (tf + fixed + perLength·dl): the two constants of one average length. Postings are sorted and
 * bounded by it when written, and queries score with it; the TypeScript and SQL forms below are the
 * only places it is written.
 */
export interface LengthNormalisation {
  readonly fixed: number;
  readonly perLength: number;
}

export function lengthNormalisation(params: Bm25Parameters, avgdl: number): LengthNormalisation {
  return { fixed: params.k1 * (1 - params.b), perLength: (params.k1 * params.b) / Math.max(avgdl, 1e-9) };
}

export function termWeight(tf: number, dl: number, n: LengthNormalisation): number {
  return tf / (tf + n.fixed + n.perLength * dl);
}

/**
 * The same weight in SQL over the expressions `tf` and `dl`. `perLength` may be an SQL expression,
 * for a statement that computes the average length itself.
 */
export function termWeightSql(
  tf: RawBuilder<unknown>,
  dl: RawBuilder<unknown>,
  n: { readonly fixed: number; readonly perLength: number | RawBuilder<unknown> },
): RawBuilder<number> {
  return sql<number>`(${tf}::float8 / (${tf} + ${n.fixed}::float8 + (${n.perLength})::float8 * ${dl}))`;
}

/**
 * A lexeme's count in a tsvector entry (`entry` is a row of `unnest(tsvector)`): its positions, or 1
 * for a stripped vector. Postings, chunk lengths and query terms all count with it.
 */
export function lexemeCount(entry: string): RawBuilder<number> {
  return sql<number>`coalesce(cardinality(${sql.ref(`${entry}.positions`)}), 1)`;
}
