import { AppError } from "../errors.ts";
import { type ExternalParserOptions, parseExternally } from "../parsing/external-parser.ts";
import { FILE_FORMATS, formatOfContentType } from "../parsing/formats.ts";
import { type ParsedDocument, ParseRefusal } from "../parsing/parsed-document.ts";
import type { TextPool } from "../text/text-pool.ts";

/** A file without a text layer: the document is kept as `needs_ocr`, with the reason. */
export class NeedsOcrError extends AppError {
  override readonly name = "NeedsOcrError";
  constructor(reason: string) {
    super("unprocessable", reason);
  }
}

/** What a stored document is chunked from. */
export interface DocumentText {
  readonly text: string;
  readonly pageStarts: readonly number[] | null;
  /** A file's text as parsed for this version, to be stored with its chunks (null: the stored text). */
  readonly parsed: ParsedDocument | null;
}

/**
 * The text a document is chunked from: what was stored, or for a file (its bytes kept), its parse in
 * a parser thread. A file the built-in parsers find no text in goes to the external parser when one is
 * configured (PGRAG_PARSER_URL), else the document needs OCR.
 */
export class DocumentTexts {
  readonly #textPool: TextPool;
  readonly #external: ExternalParserOptions | null;

  constructor(
    textPool: TextPool,
    options: { externalParserUrl: string | null; timeoutMs: number; maxTextBytes: number },
  ) {
    this.#textPool = textPool;
    this.#external = options.externalParserUrl
      ? { url: options.externalParserUrl, timeoutMs: options.timeoutMs, maxTextBytes: options.maxTextBytes }
      : null;
  }

  async textOf(row: {
    content: string;
    content_type: string;
    page_starts: number[] | null;
    original: Buffer | null;
  }): Promise<DocumentText> {
    const format = formatOfContentType(row.content_type);
    // A file parsed for this version already (its pages recorded) is not parsed again: a new file
    // or a reparse request clears them.
    if (!format || !row.original || row.page_starts !== null) {
      return { text: row.content, pageStarts: row.page_starts, parsed: null };
    }
    const outcome = await this.#textPool.parseFile(row.original, format);
    if (outcome.kind === "refused") throw new AppError("unprocessable", outcome.reason);
    let parsed: ParsedDocument =
      outcome.kind === "parsed" ? outcome : await this.#parseExternally(row.original, row.content_type, outcome.reason);
    if (parsed.text.trim() === "") throw new AppError("unprocessable", `the ${FILE_FORMATS[format].label} has no text`);
    parsed = { text: parsed.text, pageStarts: parsed.pageStarts };
    return { ...parsed, parsed };
  }

  async #parseExternally(bytes: Buffer, contentType: string, reason: string): Promise<ParsedDocument> {
    if (!this.#external) throw new NeedsOcrError(`${reason}, and no PGRAG_PARSER_URL is configured`);
    try {
      return await parseExternally(this.#external, { bytes, contentType }, (html) =>
        this.#textPool.htmlToMarkdown(html),
      );
    } catch (error) {
      if (error instanceof ParseRefusal) throw new AppError("unprocessable", error.message);
      throw error;
    }
  }
}
