import { cpus } from "node:os";
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

/**
 * CPU-seconds every core of this machine has spent busy (user, nice, system, irq) so far: what a
 * phase costs in work, which wall time alone hides when the cores are shared by every process.
 */
export function machineBusySeconds(): number {
  return cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0) / 1000;
}
