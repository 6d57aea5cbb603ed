import { AppError, InvalidRequestError } from "../errors.ts";

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
  limits: { maxBytes: number; maxLineBytes: number; what: string },
): AsyncGenerator<BodyLine> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: string[] = [];
  let partLength = 0;
  let received = 0;
  let number = 0;
  const decode = (chunk?: Uint8Array) => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new InvalidRequestError(`line ${number + 1} is not valid UTF-8`);
    }
  };
  const lineOf = (tail: string): BodyLine => {
    const text = parts.join("") + tail;
    parts = [];
    partLength = 0;
    number += 1;
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
      const text = decode(chunk);
      let start = 0;
      for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
        yield lineOf(text.slice(start, end));
        start = end + 1;
      }
      const rest = text.slice(start);
      parts.push(rest);
      partLength += rest.length;
      if (partLength > limits.maxLineBytes) {
        throw new AppError(
          "payload_too_large",
          `line ${number + 1} is longer than ${limits.maxLineBytes} bytes; each line holds one document (PGRAG_MAX_DOCUMENT_BYTES)`,
        );
      }
    }
  } finally {
    // Stops reading what is left of a refused upload; a no-op once it was read to the end.
    await reader.cancel().catch(() => undefined);
  }
  const last = decode();
  if (partLength + last.length > 0) yield lineOf(last);
}
