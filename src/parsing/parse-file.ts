import { parseDocx } from "./docx.ts";
import { FILE_FORMATS, type FileFormat, magicOf } from "./formats.ts";
import { type ParseLimits, type ParseOutcome, ParseRefusal } from "./parsed-document.ts";
import { openPdf, parsePdf } from "./pdf.ts";
import { parsePptx } from "./pptx.ts";
import { zipEntryNames } from "./zip-archive.ts";

/** What an uploaded file is, read from its bytes (its declared type may be wrong or absent), or why it is refused. */
export type Identification =
  | { readonly kind: "format"; readonly format: FileFormat }
  | { readonly kind: "refused"; readonly reason: string }
  | { readonly kind: "unknown" };

/**
 * Runs in a parser thread: a PDF is opened (so an encrypted one is refused at once), an Office
 * file's archive checked against the limits.
 */
export async function identifyFile(bytes: Uint8Array, limits: ParseLimits): Promise<Identification> {
  const magic = magicOf(bytes);
  if (magic === null) return { kind: "unknown" };
  try {
    if (magic === "pdf") {
      await (await openPdf(bytes)).loadingTask.destroy();
      return { kind: "format", format: "pdf" };
    }
    const names = new Set(zipEntryNames(bytes, limits));
    if (names.has("word/document.xml")) return { kind: "format", format: "docx" };
    if (names.has("ppt/presentation.xml")) return { kind: "format", format: "pptx" };
    return {
      kind: "refused",
      reason: "the file is a zip archive, but neither a Word (.docx) nor a PowerPoint (.pptx) file",
    };
  } catch (error) {
    if (error instanceof ParseRefusal) return { kind: "refused", reason: error.message };
    throw error;
  }
}

/** Runs in a parser thread, under its time budget and memory cap. */
export async function parseFile(bytes: Uint8Array, format: FileFormat, limits: ParseLimits): Promise<ParseOutcome> {
  try {
    if (format === "pdf") return await parsePdf(bytes, limits);
    const parsed = format === "docx" ? await parseDocx(bytes, limits) : parsePptx(bytes, limits);
    return { kind: "parsed", ...parsed };
  } catch (error) {
    if (error instanceof ParseRefusal) return { kind: "refused", reason: error.message };
    // Anything else the parser throws is the file's doing (corrupt, or built to overflow a parser's
    // stack): parsing is pure computation, so trying again would fail the same way.
    const label = FILE_FORMATS[format].label;
    return { kind: "refused", reason: `the ${label} cannot be parsed (${(error as Error).message})` };
  }
}
