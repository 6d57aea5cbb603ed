import mammoth from "mammoth";
import { htmlToMarkdown } from "../text/html-to-markdown.ts";
import { type ParseLimits, ParseRefusal, type ParsedDocument } from "./parsed-document.ts";
import { zipEntryNames } from "./zip-archive.ts";

/**
 * A Word document through mammoth (its styles' headings become h1–h6, lists and tables stay lists
 * and tables) and then the HTML path every HTML upload takes. Word files have no fixed pages (the
 * layout is the reader's), so a chunk's location is its heading path. Images are left out: their
 * bytes would otherwise be inlined as data URLs.
 */
export async function parseDocx(bytes: Uint8Array, limits: ParseLimits): Promise<ParsedDocument> {
  if (!zipEntryNames(bytes, limits).includes("word/document.xml")) {
    throw new ParseRefusal("the file is not a Word document (no word/document.xml)");
  }
  let html: string;
  try {
    const result = await mammoth.convertToHtml(
      { buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) },
      { convertImage: mammoth.images.imgElement(async () => ({ src: "" })) },
    );
    html = result.value;
  } catch (error) {
    throw new ParseRefusal(`the Word document cannot be read (${(error as Error).message})`);
  }
  const text = htmlToMarkdown(html);
  if (Buffer.byteLength(text) > limits.maxTextBytes) {
    throw new ParseRefusal(
      `the file's text is larger than the limit of ${limits.maxTextBytes} bytes (PGRAG_MAX_DOCUMENT_BYTES)`,
    );
  }
  return { text, pageStarts: [] };
}
