/**
 * The file formats parsed into text in the parser threads (text formats are read as they are, see
 * text/content.ts), with their registered media types and file extensions.
 */
export const FILE_FORMATS = {
  pdf: { contentType: "application/pdf", extension: ".pdf", label: "PDF" },
  docx: {
    contentType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    extension: ".docx",
    label: "Word document",
  },
  pptx: {
    contentType: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    extension: ".pptx",
    label: "PowerPoint presentation",
  },
} as const;

export type FileFormat = keyof typeof FILE_FORMATS;

export const FILE_CONTENT_TYPES = Object.values(FILE_FORMATS).map((f) => f.contentType);

export function formatOfContentType(contentType: string): FileFormat | undefined {
  return formatWhere((f) => f.contentType === contentType);
}

/** The file format a file name's extension (with its dot, lower case) names, if any. */
export function formatOfExtension(extension: string): FileFormat | undefined {
  return formatWhere((f) => f.extension === extension);
}

function formatWhere(matches: (format: (typeof FILE_FORMATS)[FileFormat]) => boolean): FileFormat | undefined {
  return (Object.keys(FILE_FORMATS) as FileFormat[]).find((f) => matches(FILE_FORMATS[f]));
}

/** A page is a slide in a presentation: citations say "slide 4" instead of "p. 4". */
export function pageUnitOf(contentType: string): "page" | "slide" | null {
  const format = formatOfContentType(contentType);
  if (format === "pdf") return "page";
  if (format === "pptx") return "slide";
  return null;
}

/**
 * What the first bytes say the file is, whatever its declared type: a PDF, a zip archive (an Office
 * file is one; which one is read from its entries in a parser thread), or neither.
 */
export function magicOf(bytes: Uint8Array): "pdf" | "zip" | null {
  // At the very start: a text that mentions "%PDF-" in its first lines is still text.
  if (Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 5)).toString("latin1") === "%PDF-") {
    return "pdf";
  }
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return "zip";
  return null;
}
