import type { FormEvent } from "../batch/batch.service.ts";
import { InvalidRequestError } from "../errors.ts";
import { bodyLines } from "../ingest/imports/import-lines.ts";

/** Form fields other than files are short; more than this is refused. */
const MAX_FIELD_CHARS = 64 * 1024;

/**
 * A multipart/form-data body read as it arrives: each text field whole, each file as its lines
 * (numbered from 1 in the file), so a JSON Lines upload is checked line by line without holding the
 * file. Lines are bounded by `maxLineBytes`, the body by `maxBytes` (413 past either).
 */
export async function* multipartLines(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  limits: { maxBytes: number; maxLineBytes: number; what: string },
): AsyncGenerator<FormEvent> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const delimiter = `--${boundary?.[1] ?? boundary?.[2]?.trim() ?? ""}`;
  if (delimiter === "--") throw new InvalidRequestError("send the file as multipart/form-data (no boundary given)");
  let part: { name: string; filename: string | null; headers: boolean; value: string[]; line: number } | null = null;
  // The body line where the current part's content starts: errors name lines of the file, not of the form.
  let contentStart = 0;
  const nameLine = (n: number) =>
    part && !part.headers
      ? `line ${n - contentStart} of ${part.filename === null ? `the field "${part.name}"` : `"${part.filename}"`}`
      : `line ${n} of the form`;
  const ended = function* (): Generator<FormEvent> {
    if (part && !part.headers && part.filename === null) {
      yield { kind: "field", name: part.name, value: part.value.join("\n") };
    }
  };
  for await (const { number, text } of bodyLines(body, { ...limits, nameLine })) {
    if (text === delimiter || text === `${delimiter}--`) {
      yield* ended();
      part = text === delimiter ? { name: "", filename: null, headers: true, value: [], line: 0 } : null;
      continue;
    }
    if (!part) continue; // the preamble and epilogue
    if (part.headers) {
      if (text === "") {
        part.headers = false;
        contentStart = number;
        continue;
      }
      const disposition = /^content-disposition:(.*)$/i.exec(text)?.[1];
      if (disposition) {
        part.name = /\bname="([^"]*)"/i.exec(disposition)?.[1] ?? "";
        const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
        part.filename = filename ?? null;
      }
      continue;
    }
    if (part.filename !== null) {
      part.line += 1;
      yield { kind: "line", filename: part.filename, number: part.line, text };
    } else {
      part.value.push(text);
      if (part.value.join("\n").length > MAX_FIELD_CHARS) {
        throw new InvalidRequestError(`the form field "${part.name}" is longer than ${MAX_FIELD_CHARS} characters`);
      }
    }
  }
}
