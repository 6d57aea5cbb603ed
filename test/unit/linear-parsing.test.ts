import { describe, expect, it } from "vitest";
import { chunkText, DEFAULT_CHUNKING } from "../../src/text/chunking.ts";
import { htmlToMarkdown } from "../../src/text/html-to-markdown.ts";
import { PARSER_INPUTS } from "../../harness/parser-inputs.ts";

/**
 * Parsers of untrusted text must be linear. How their time grows from 1 KB to 5 MB is measured by
 * `npm run bench:parsing` (a timing has no place in a test that must pass on a busy machine); here
 * each family of pathological input is parsed whole at 5 MB, and what comes out is checked.
 */
const SIZE = 5 * 1_024 * 1_024;

describe("parsers of hostile input, at 5 MB", () => {
  for (const [name, make] of Object.entries(PARSER_INPUTS.chunking)) {
    it(`chunking: ${name}`, () => {
      const input = make(SIZE);
      const chunks = chunkText(input, DEFAULT_CHUNKING);
      // Every chunk is a slice of the input, within its bounds.
      for (const chunk of chunks) {
        expect(chunk.charEnd).toBeLessThanOrEqual(input.length);
        expect(chunk.charStart).toBeLessThan(chunk.charEnd);
      }
    });
  }
  for (const [name, make] of Object.entries(PARSER_INPUTS["HTML conversion"])) {
    it(`HTML conversion: ${name}`, () => {
      const markdown = htmlToMarkdown(make(SIZE));
      expect(typeof markdown).toBe("string");
      expect(markdown).not.toMatch(/<\/?(div|b|table|tr|td|a)\b/);
    });
  }
});
