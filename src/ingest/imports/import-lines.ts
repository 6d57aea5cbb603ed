import { z } from "zod";
import { AppError, describeIssues, InvalidRequestError } from "../../errors.ts";
import { refuseDeepJson } from "../../text/json-depth.ts";
import { documentFields, externalId } from "../document-fields.ts";
import type { ImportLine } from "./imports.repository.ts";

export interface BodyLine {
  /** 1-based, counting empty lines too, as an editor does. */
  readonly number: number;
  readonly text: string;
}

/**
 * The lines of a streamed request body, as they arrive: nothing is buffered beyond the line being
 * read, which may be at most `maxLineBytes`; the whole body at most `maxBytes`. Past either, a 413
 * that names the limit. Not UTF-8: a 400.
 */
export async function* bodyLines(
  body: ReadableStream<Uint8Array>,
  limits: {
    maxBytes: number;
    maxLineBytes: number;
    what: string;
    /** How an error names a line of the body (a form names it by its place in the file it is part of). */
    nameLine?: (number: number) => string;
  },
): AsyncGenerator<BodyLine> {
  const nameLine = limits.nameLine ?? ((n: number) => `line ${n}`);
  // Lines are cut at the newline byte (never part of another UTF-8 character) and decoded one by one,
  // so an error names the line it is in.
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: Uint8Array[] = [];
  let partBytes = 0;
  let received = 0;
  let number = 0;
  const tooLong = () =>
    new AppError(
      "payload_too_large",
      `${nameLine(number + 1)} is longer than ${limits.maxLineBytes} bytes; each line holds one document or request`,
    );
  const lineOf = (tail: Uint8Array): BodyLine => {
    if (partBytes + tail.byteLength > limits.maxLineBytes) throw tooLong();
    const bytes = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
    parts = [];
    partBytes = 0;
    number += 1;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new InvalidRequestError(`${nameLine(number)} is not valid UTF-8`);
    }
    return { number, text: text.endsWith("\r") ? text.slice(0, -1) : text };
  };
  const reader = body.getReader();
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      const chunk = read.value;
      received += chunk.byteLength;
      if (received > limits.maxBytes) {
        throw new AppError("payload_too_large", `the upload is larger than ${limits.maxBytes} bytes (${limits.what})`);
      }
      let start = 0;
      for (let end = chunk.indexOf(0x0a); end >= 0; end = chunk.indexOf(0x0a, start)) {
        yield lineOf(chunk.subarray(start, end));
        start = end + 1;
      }
      if (start < chunk.byteLength) {
        parts.push(chunk.slice(start));
        partBytes += chunk.byteLength - start;
        if (partBytes > limits.maxLineBytes) throw tooLong();
      }
    }
  } finally {
    // Stops reading what is left of a refused upload; a no-op once it was read to the end.
    await reader.cancel().catch(() => undefined);
  }
  if (partBytes > 0) yield lineOf(new Uint8Array(0));
}

/**
 * A line: a document as the batch upload takes it (BEIR's `_id` and `text` read as external_id and
 * content), or a file: `content_base64` (a PDF, Word or PowerPoint file, its type read from its
 * bytes) with its `file_name`.
 */
const importLine = z.preprocess(
  (value) =>
    value && typeof value === "object" && !Array.isArray(value)
      ? {
          ...value,
          external_id: (value as Record<string, unknown>).external_id ?? (value as Record<string, unknown>)._id,
          content: (value as Record<string, unknown>).content ?? (value as Record<string, unknown>).text,
        }
      : value,
  z
    .object({
      external_id: externalId,
      ...documentFields,
      content: documentFields.content.optional(),
      content_base64: z
        .string()
        .regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be base64")
        .optional(),
      file_name: z.string().min(1).max(512).optional(),
    })
    .refine((line) => (line.content === undefined) !== (line.content_base64 === undefined), {
      message: "give exactly one of content (text) or content_base64 (a file)",
      path: ["content"],
    }),
);

/**
 * The documents of a JSON Lines upload (the API's body, or a file for `pgrag import`), validated as
 * they arrive; a bad line stops the upload with its number and the reason.
 */
export async function* importDocumentsOf(
  body: ReadableStream<Uint8Array>,
  limits: { maxBytes: number; maxDocuments: number; maxDocumentBytes: number; what: string },
): AsyncGenerator<ImportLine> {
  let documents = 0;
  // JSON escapes can double a document's size; titles, metadata and keys add a little.
  const maxLineBytes = limits.maxDocumentBytes * 2 + 256 * 1024;
  for await (const { number, text } of bodyLines(body, {
    maxBytes: limits.maxBytes,
    maxLineBytes,
    what: limits.what,
  })) {
    if (text.trim() === "") continue;
    refuseDeepJson(text, `line ${number}`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new InvalidRequestError(`line ${number} is not valid JSON (one document object per line)`);
    }
    const parsed = importLine.safeParse(value);
    if (!parsed.success) {
      const { message, details } = describeIssues(parsed.error);
      throw new InvalidRequestError(`line ${number}: ${message}`, { details });
    }
    documents += 1;
    if (documents > limits.maxDocuments) {
      throw new AppError(
        "payload_too_large",
        `more than ${limits.maxDocuments} documents in one import (PGRAG_IMPORT_MAX_DOCUMENTS); split the file`,
      );
    }
    const d = parsed.data;
    yield {
      line: number,
      externalId: d.external_id,
      title: d.title ?? null,
      source: d.source ?? null,
      contentType: d.content_type,
      metadata: d.metadata ?? {},
      access: d.access ?? null,
      content: d.content ?? "",
      file:
        d.content_base64 === undefined
          ? null
          : { bytes: Buffer.from(d.content_base64, "base64"), name: d.file_name ?? d.external_id },
    };
  }
}
