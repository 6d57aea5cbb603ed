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
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidRequestError("the document is not valid UTF-8 text");
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
