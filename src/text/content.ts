import { createHash } from "node:crypto";
import { AppError, InvalidRequestError } from "../errors.ts";

/** What a document can be sent as, and how each is stored: HTML becomes Markdown so headings survive. */
export const CONTENT_TYPES = ["text/markdown", "text/plain", "text/html"] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];

export function parseContentType(header: string | undefined): ContentType {
  const base = (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const aliases: Record<string, ContentType> = {
    "text/x-markdown": "text/markdown",
    "text/md": "text/markdown",
  };
  const type = aliases[base] ?? base;
  if ((CONTENT_TYPES as readonly string[]).includes(type)) return type as ContentType;
  throw new AppError(
    "invalid_request",
    `unsupported content type "${base || "(none)"}": use one of ${CONTENT_TYPES.join(", ")}`,
    {
      details: { supported: CONTENT_TYPES },
    },
  );
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

export function contentHash(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
