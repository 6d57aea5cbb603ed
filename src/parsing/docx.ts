import { zipSync } from "fflate";
import mammoth from "mammoth";
import { htmlToMarkdown } from "../text/html-to-markdown.ts";
import { type ParseLimits, ParseRefusal, type ParsedDocument } from "./parsed-document.ts";
import { readZipEntries, zipEntryNames } from "./zip-archive.ts";

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
  // mammoth reads the archive with JSZip, which inflates an entry whole before comparing it with the
  // size its header declares, so a lying header would expand past the checks. mammoth gets an archive
  // rebuilt from entries inflated by fflate, which never writes past the declared (checked) sizes.
  // Images are left behind: they are not converted.
  const entries = readZipEntries(bytes, (name) => !name.startsWith("word/media/"));
  const honest = zipSync(Object.fromEntries(entries), { level: 0 });
  let html: string;
  try {
    const result = await mammoth.convertToHtml(
      { buffer: Buffer.from(honest.buffer, honest.byteOffset, honest.byteLength) },
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
