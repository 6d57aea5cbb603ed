import { createHash } from "node:crypto";
import { AppError, InvalidRequestError } from "../errors.ts";
import { FILE_CONTENT_TYPES } from "../parsing/formats.ts";

/** What a document can be sent as, and how each is stored: HTML becomes Markdown so headings survive. */
export const CONTENT_TYPES = ["text/markdown", "text/plain", "text/html"] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];

const ALIASES: Record<string, ContentType> = {
  "text/x-markdown": "text/markdown",
  "text/md": "text/markdown",
};

const EXTENSIONS: Record<string, ContentType> = {
  ".md": "text/markdown",
  ".markdown": "text/markdown",
  ".txt": "text/plain",
  ".text": "text/plain",
  ".html": "text/html",
  ".htm": "text/html",
};

/** Types that say nothing about the content: the file name's extension says it instead. */
const GENERIC = new Set(["", "application/octet-stream", "binary/octet-stream"]);

/**
 * The text type of an upload whose bytes are not a file format (see parsing/formats.ts): the
 * declared type, or when that is generic, the file name's extension (plain text without one).
 */
export function textTypeOf(header: string | undefined, fileName: string | null = null): ContentType {
  const base = (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const type = ALIASES[base] ?? base;
  if ((CONTENT_TYPES as readonly string[]).includes(type)) return type as ContentType;
  if (GENERIC.has(type)) {
    const extension = /\.[^./]+$/.exec(fileName ?? "")?.[0]?.toLowerCase() ?? "";
    return EXTENSIONS[extension] ?? "text/plain";
  }
  const supported = [...CONTENT_TYPES, ...FILE_CONTENT_TYPES];
  const known = (FILE_CONTENT_TYPES as readonly string[]).includes(type);
  throw new AppError(
    "unsupported_media_type",
    known
      ? `the body is declared "${base}" but its bytes are not such a file`
      : `unsupported content type "${base || "(none)"}": send PDF, Word (.docx), PowerPoint (.pptx), Markdown, HTML or plain text`,
    { details: { supported } },
  );
}

/** The text type a file name's extension names, if any (for a folder's files). */
export function textTypeOfExtension(extension: string): ContentType | undefined {
  return EXTENSIONS[extension.toLowerCase()];
}

/** Decodes an uploaded body, refusing invalid UTF-8 rather than storing replacement characters. */
export function decodeUtf8(bytes: Uint8Array): string {
  return decodeText(bytes, "utf-8");
}

/** The charset a Content-Type header names (`text/plain; charset=iso-8859-1`); UTF-8 when none. */
export function charsetOf(header: string | undefined): string {
  return /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(header ?? "")?.[1] ?? "utf-8";
}

/**
 * Decodes an uploaded body in its charset, with the WHATWG Encoding standard's decoders (Node's
 * TextDecoder, on ICU: the Latin and Windows code pages, the CJK encodings, UTF-16…); an unknown
 * charset or bytes that are not valid in it are refused rather than stored as replacement characters.
 */
export function decodeText(bytes: Uint8Array, charset: string): string {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset, { fatal: true });
  } catch {
    throw new InvalidRequestError(
      `unknown charset "${charset}": send UTF-8, or name a charset of the WHATWG Encoding standard (iso-8859-1, windows-1252, shift_jis, utf-16le…)`,
    );
  }
  try {
    return decoder.decode(bytes);
  } catch {
    throw new InvalidRequestError(
      charset.toLowerCase() === "utf-8" || charset.toLowerCase() === "utf8"
        ? "the document is not valid UTF-8 text: name its charset in the Content-Type (e.g. text/plain; charset=iso-8859-1)"
        : `the document is not valid ${charset} text`,
    );
  }
}

export interface NormalizedContent {
  readonly text: string;
  readonly hash: Buffer;
}

/**
 * The text that is stored, chunked and cited (offsets refer to it). HTML is converted by
 * `htmlToMarkdown`, which runs off the event loop (the text pool) with a time budget.
 */
export async function normalizeContent(
  raw: string,
  type: ContentType,
  maxBytes: number,
  htmlToMarkdown: (html: string) => Promise<string>,
): Promise<NormalizedContent> {
  if (Buffer.byteLength(raw, "utf8") > maxBytes) {
    throw new AppError(
      "payload_too_large",
      `the document is larger than the limit of ${maxBytes} bytes (PGRAG_MAX_DOCUMENT_BYTES)`,
    );
  }
  if (raw.includes("\u0000"))
    throw new InvalidRequestError("the document contains NUL characters, which PostgreSQL text cannot store");
  const text = (type === "text/html" ? await htmlToMarkdown(raw) : raw).replace(/\r\n?/g, "\n");
  if (text.trim() === "") throw new InvalidRequestError("the document is empty");
  return { text, hash: contentHash(text) };
}

export function contentHash(text: string | Uint8Array): Buffer {
  return createHash("sha256").update(text).digest();
}
