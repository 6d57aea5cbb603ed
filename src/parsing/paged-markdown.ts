import { ParseRefusal, type ParsedDocument } from "./parsed-document.ts";

/** Characters PostgreSQL text cannot hold (NUL) or that only garble a chunk (other C0 controls but tab and newline). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/**
 * Builds a parser's Markdown: blocks separated by blank lines, headings as `#` lines (one line
 * each, so the chunker sees them), and the offset where each page starts.
 */
export class PagedMarkdown {
  readonly #blocks: string[] = [];
  readonly #pageStarts: number[] = [];
  /** In UTF-16 code units, as the offsets are. */
  #length = 0;
  #bytes = 0;
  readonly #maxBytes: number;

  /** `maxBytes` bounds the text's UTF-8 size (PGRAG_MAX_DOCUMENT_BYTES): a file that expands past it is refused, not truncated. */
  constructor(maxBytes = Number.POSITIVE_INFINITY) {
    this.#maxBytes = maxBytes;
  }

  /** The next block starts a new page (a page without text still counts, so numbers stay the file's). */
  startPage(): void {
    this.#pageStarts.push(this.#length + (this.#blocks.length > 0 ? 2 : 0));
  }

  heading(level: number, text: string): void {
    const line = clean(text).replace(/\s+/g, " ").trim();
    if (line !== "") this.#push(`${"#".repeat(Math.min(6, Math.max(1, level)))} ${line}`);
  }

  /** Markdown as it is (blank lines, headings), for text converted elsewhere. */
  markdown(text: string): void {
    const block = clean(text).trim();
    if (block !== "") this.#push(block);
  }

  paragraph(text: string): void {
    const block = clean(text)
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "")
      .join("\n");
    if (block !== "") this.#push(block);
  }

  finish(): ParsedDocument {
    const text = this.#blocks.join("\n\n");
    // A page whose start lies past the end (trailing empty pages) starts at the end.
    return { text, pageStarts: this.#pageStarts.map((start) => Math.min(start, text.length)) };
  }

  #push(block: string): void {
    const separator = this.#blocks.length > 0 ? 2 : 0;
    this.#bytes += separator + Buffer.byteLength(block);
    if (this.#bytes > this.#maxBytes) {
      throw new ParseRefusal(
        `the file's text is larger than the limit of ${this.#maxBytes} bytes (PGRAG_MAX_DOCUMENT_BYTES)`,
      );
    }
    this.#length += separator + block.length;
    this.#blocks.push(block);
  }
}

function clean(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(CONTROL, " ");
}
