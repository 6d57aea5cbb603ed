import { describe, expect, it } from "vitest";
import { chunkText, DEFAULT_CHUNKING } from "../../src/ingest/chunking.ts";
import { htmlToMarkdown } from "../../src/ingest/html-to-markdown.ts";

/**
 * Parsers of untrusted text must be linear. Each family of pathological input is parsed at growing
 * sizes (1 KB → 5 MB); between two sizes whose times are measurable, time may grow at most 4× faster
 * than the input (quadratic growth from 1 MB to 5 MB would be 25×, linear 5×; the threshold is 20×).
 */
const SIZES = [1_024, 64 * 1_024, 1_024 * 1_024, 5 * 1_024 * 1_024];
const MEASURABLE_MS = 5;
const SLACK = 4;

const repeatTo = (unit: string, bytes: number) => unit.repeat(Math.max(1, Math.floor(bytes / unit.length)));

const chunkerInputs: Record<string, (bytes: number) => string> = {
  "a run of punctuation": (n) => `a${"!".repeat(n)}a`,
  "a heading followed by spaces": (n) => `# a${" ".repeat(n)}b`,
  "text with no white space": (n) => "x".repeat(n),
  "sentence ends everywhere": (n) => repeatTo("e.g. 1.5! ", n),
  "only line breaks": (n) => "\n".repeat(n),
  "headings only": (n) => repeatTo("# h\n", n),
};

const htmlInputs: Record<string, (bytes: number) => string> = {
  "deep nesting": (n) => `${repeatTo("<div>", n / 2)}x${repeatTo("</div>", n / 2)}`,
  "unclosed inline tags": (n) => repeatTo("<b>", n),
  "a huge table": (n) => `<table>${repeatTo("<tr><td>cell</td><td>value</td></tr>", n)}</table>`,
  "a long attribute": (n) => `<a href="${"x".repeat(n)}">link</a>`,
  "an unclosed comment": (n) => `<!--${"-".repeat(n)}`,
  entities: (n) => repeatTo("&amp;&#x41;&nbsp;", n),
};

function fastest(run: () => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

function expectLinear(parse: (input: string) => unknown, make: (bytes: number) => string): void {
  const times = SIZES.map((bytes) => {
    const input = make(bytes);
    return fastest(() => parse(input));
  });
  for (let i = 1; i < SIZES.length; i++) {
    const [before, after] = [times[i - 1] as number, times[i] as number];
    if (before < MEASURABLE_MS) continue;
    const growth = (SIZES[i] as number) / (SIZES[i - 1] as number);
    expect(
      after / before,
      `${SIZES[i - 1]} → ${SIZES[i]} bytes: ${before.toFixed(1)} → ${after.toFixed(1)} ms`,
    ).toBeLessThan(growth * SLACK);
  }
}

describe("parsing time grows linearly with hostile input", () => {
  for (const [name, make] of Object.entries(chunkerInputs)) {
    it(`chunking: ${name}`, () => expectLinear((text) => chunkText(text, DEFAULT_CHUNKING), make));
  }
  for (const [name, make] of Object.entries(htmlInputs)) {
    it(`HTML conversion: ${name}`, () => expectLinear(htmlToMarkdown, make));
  }
});
