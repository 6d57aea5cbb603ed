/** Nearest-rank percentiles, the same as the evaluation command's. */
export { percentile } from "../src/evaluation/metrics.ts";

export function formatMs(ms: number): string {
  return `${ms.toFixed(3)} ms`;
}

export async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e6;
}
