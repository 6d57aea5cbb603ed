import { UnavailableError } from "../errors.ts";
import { PagedMarkdown } from "./paged-markdown.ts";
import type { ParsedDocument } from "./parsed-document.ts";

export interface ExternalParserOptions {
  /** The server's base URL, e.g. http://tika:9998 (PGRAG_PARSER_URL). */
  readonly url: string;
  readonly timeoutMs: number;
  /** The longest text accepted back (PGRAG_MAX_DOCUMENT_BYTES), read as it arrives. */
  readonly maxTextBytes: number;
}

const PAGE = /<div class="page">/i;

/**
 * A file the built-in parsers cannot read (a scanned PDF) sent to an external parser speaking
 * Apache Tika server's API: `PUT /tika` with the file as the body, XHTML back, one
 * `<div class="page">` per page (OCR on when the server has Tesseract). The pages become pages of
 * the result, each converted by `htmlToMarkdown` (the text pool, off the event loop). A parser that
 * cannot be reached, or answers with an error, is a transient failure: the job is tried again.
 */
export async function parseExternally(
  options: ExternalParserOptions,
  file: { bytes: Uint8Array; contentType: string },
  htmlToMarkdown: (html: string) => Promise<string>,
): Promise<ParsedDocument> {
  const endpoint = new URL("tika", options.url.endsWith("/") ? options.url : `${options.url}/`);
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: "PUT",
      headers: { "Content-Type": file.contentType, Accept: "text/html", "X-Tika-PDFOcrStrategy": "auto" },
      body: Buffer.from(file.bytes),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    throw new UnavailableError(
      `the external parser at ${endpoint.origin} cannot be reached (${(error as Error).message})`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new UnavailableError(`the external parser at ${endpoint.origin} answered ${response.status}`);
  }
  const xhtml = await boundedText(response, options.maxTextBytes * 4);
  const [, ...pages] = xhtml.split(PAGE);
  const out = new PagedMarkdown(options.maxTextBytes);
  for (const page of pages.length > 0 ? pages : [xhtml]) {
    if (pages.length > 0) out.startPage();
    out.markdown(await htmlToMarkdown(page));
  }
  return out.finish();
}

async function boundedText(response: Response, maxBytes: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const parts: Uint8Array[] = [];
  let received = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    received += read.value.byteLength;
    if (received > maxBytes) {
      await reader.cancel();
      throw new UnavailableError(`the external parser's answer is larger than ${maxBytes} bytes`);
    }
    parts.push(read.value);
  }
  return Buffer.concat(parts).toString("utf8");
}
