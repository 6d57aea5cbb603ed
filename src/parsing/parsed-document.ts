import type { Config } from "../config.ts";

/**
 * What a parser makes of a file: Markdown text (headings as `#` lines, so the chunker follows the
 * document's sections) and where each page or slide starts in it, so a chunk's offsets say which
 * pages it came from.
 */
export interface ParsedDocument {
  readonly text: string;
  /** `pageStarts[i]` is the offset in `text` where page (or slide) i + 1 starts; empty for formats without pages. */
  readonly pageStarts: readonly number[];
}

/** Bounds on one file's parse (besides its thread's time budget and memory cap); see the PGRAG_PARSE_* settings. */
export type ParseLimits = Config["ingest"]["text"]["parsing"]["limits"];

/**
 * The outcome of parsing one file in a parser thread. Refusals are values, not exceptions: an error
 * crossing the thread boundary loses its class, and each reason must reach the document intact.
 */
export type ParseOutcome =
  | ({ readonly kind: "parsed" } & ParsedDocument)
  /** A file with no text to read (a scanned PDF): stored, marked needs_ocr with the reason. */
  | { readonly kind: "needs_ocr"; readonly reason: string }
  /** A file that cannot be read as it is (encrypted, corrupt, over a limit): failed with the reason. */
  | { readonly kind: "refused"; readonly reason: string };

/** The pages (1-based, first and last) that the text between `start` and `end` spans. */
export function pagesSpanned(
  pageStarts: readonly number[],
  start: number,
  end: number,
): { first: number; last: number } | null {
  if (pageStarts.length === 0) return null;
  const pageAt = (offset: number) => {
    let low = 0;
    let high = pageStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((pageStarts[mid] as number) <= offset) low = mid;
      else high = mid - 1;
    }
    return low + 1;
  };
  return { first: pageAt(start), last: pageAt(Math.max(start, end - 1)) };
}

/** A file that cannot be parsed as it is, with the reason the document records. Thrown inside a parser thread only. */
export class ParseRefusal extends Error {
  override readonly name = "ParseRefusal";
}
