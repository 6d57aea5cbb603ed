/**
 * A text array as one PostgreSQL array literal (`{"a","b"}`), for where a parameter cannot be an
 * array of arrays (unnest of rows with lists of different lengths) or is not a parameter at all
 * (a setting opened with the transaction).
 */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/["\\]/g, "\\$&")}"`).join(",")}}`;
}
