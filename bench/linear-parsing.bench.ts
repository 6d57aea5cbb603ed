/**
 * `npm run bench:parsing`: how the parsers of untrusted text scale. Each family of pathological input
 * is parsed at 1 KB, 64 KB, 1 MB and 5 MB (best of three); printed: the times and, between two sizes
 * whose times are measurable (≥ 5 ms), how much faster than the input the time grew. Linear growth
 * is ~1×; quadratic growth from 1 MB to 5 MB would be ~5×. Flagged past 4×.
 */
import { chunkText, DEFAULT_CHUNKING } from "../src/text/chunking.ts";
import { htmlToMarkdown } from "../src/text/html-to-markdown.ts";
import { PARSER_INPUTS } from "../harness/parser-inputs.ts";

const SIZES = [1_024, 64 * 1_024, 1_024 * 1_024, 5 * 1_024 * 1_024];
const MEASURABLE_MS = 5;
const SLACK = 4;

function fastest(run: () => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

const parsers = {
  chunking: (text: string) => chunkText(text, DEFAULT_CHUNKING),
  "HTML conversion": htmlToMarkdown,
} as const;

console.log("bench:parsing — time by input size (ms), and growth beyond the input's between measurable sizes");
let flagged = 0;
for (const [parser, families] of Object.entries(PARSER_INPUTS)) {
  for (const [name, make] of Object.entries(families)) {
    const times = SIZES.map((bytes) => {
      const input = make(bytes);
      return fastest(() => parsers[parser as keyof typeof parsers](input));
    });
    const growth: string[] = [];
    for (let i = 1; i < SIZES.length; i++) {
      const [before, after] = [times[i - 1] as number, times[i] as number];
      if (before < MEASURABLE_MS) continue;
      const excess = after / before / ((SIZES[i] as number) / (SIZES[i - 1] as number));
      if (excess > SLACK) flagged++;
      growth.push(`${excess.toFixed(2)}×${excess > SLACK ? " NOT LINEAR" : ""}`);
    }
    console.log(
      `${`${parser}: ${name}`.padEnd(52)} ${times.map((t) => t.toFixed(1).padStart(8)).join(" ")}   ${growth.join(", ") || "(too fast to measure)"}`,
    );
  }
}
console.log(flagged === 0 ? "every family grows linearly" : `${flagged} growth step(s) beyond ${SLACK}× the input's`);
process.exitCode = flagged === 0 ? 0 : 1;
