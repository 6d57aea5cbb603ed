import type { Kysely } from "kysely";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import { AppError, InvalidRequestError, NotFoundError } from "../errors.ts";
import type { Principal } from "../tenancy/principal.ts";
import {
  type Batch,
  type BatchEndpoint,
  type BatchFile,
  cancelBatch,
  fileLines,
  findBatch,
  findFile,
  insertBatch,
  insertFile,
  linesForOtherEndpoints,
  listBatches,
} from "./batches.repository.ts";

export const BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings"] as const;

/** One request of a batch input file, as OpenAI's Batch API takes it. */
const requestLine = z
  .object({
    custom_id: z.string().min(1, "must not be empty").max(512, "at most 512 characters"),
    method: z.literal("POST", { error: 'must be "POST"' }),
    url: z.enum(BATCH_ENDPOINTS, { error: `must be one of ${BATCH_ENDPOINTS.join(", ")}` }),
    body: z.record(z.string(), z.unknown(), { error: "must be a JSON object (the request body)" }),
  })
  .loose();

/** Line errors reported with a refused upload. */
const ERRORS_SHOWN = 20;

export interface BatchLimits {
  readonly maxFileBytes: number;
  readonly maxLines: number;
  /** Longest completion window accepted, in seconds (OpenAI's is 24 h). */
  readonly maxWindowSeconds: number;
}

/** OpenAI-compatible files and batches, tenant by tenant (row-level security scopes every statement). */
export class BatchService {
  readonly #router: Router;
  readonly #limits: BatchLimits;

  constructor(router: Router, limits: BatchLimits) {
    this.#router = router;
    this.#limits = limits;
  }

  /** Stores an input file after checking every line; refuses it with each bad line's number and reason. */
  async uploadFile(principal: Principal, upload: { filename: string; purpose: string; text: string }) {
    if (upload.purpose !== "batch") {
      throw new InvalidRequestError(
        `purpose must be "batch" (files here are inputs of batches), got "${upload.purpose}"`,
      );
    }
    const bytes = Buffer.byteLength(upload.text);
    if (bytes > this.#limits.maxFileBytes) {
      throw new AppError(
        "payload_too_large",
        `the file is larger than ${this.#limits.maxFileBytes} bytes (PGRAG_BATCH_MAX_FILE_BYTES)`,
      );
    }
    const lines: string[] = [];
    const errors: { line: number; message: string }[] = [];
    const seen = new Map<string, number>();
    for (const [index, raw] of upload.text.split("\n").entries()) {
      const text = raw.trim();
      if (text === "") continue;
      const number = index + 1;
      const problem = lineProblem(text, seen, number);
      if (problem) errors.push({ line: number, message: problem });
      else lines.push(text);
    }
    if (errors.length > 0) {
      const shown = errors.slice(0, 5).map((e) => `line ${e.line}: ${e.message}`);
      throw new InvalidRequestError(
        `the batch file has ${errors.length} bad line(s): ${shown.join("; ")}${errors.length > 5 ? "; …" : ""}`,
        { details: errors.slice(0, ERRORS_SHOWN) },
      );
    }
    if (lines.length === 0)
      throw new InvalidRequestError("the batch file holds no requests: one JSON request per line");
    if (lines.length > this.#limits.maxLines) {
      throw new AppError(
        "payload_too_large",
        `more than ${this.#limits.maxLines} requests in one file (PGRAG_BATCH_MAX_LINES)`,
      );
    }
    const id = `file-${crypto.randomUUID().replaceAll("-", "")}`;
    return this.#write(principal, async (tx) => {
      await insertFile(tx, { id, tenantId: principal.tenantId, filename: upload.filename, bytes }, lines);
      return this.#requireFile(tx, id);
    });
  }

  async getFile(principal: Principal, id: string): Promise<BatchFile> {
    return (await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) => this.#requireFile(db, id)))
      .value;
  }

  /** A file's content, line by line, read in pages (an output file of 50,000 answers is not held at once). */
  async *fileContent(principal: Principal, file: BatchFile): AsyncGenerator<string> {
    for (let after = 0; ;) {
      const { value: page } = await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) =>
        fileLines(db, file, after, 1_000),
      );
      for (const line of page) yield `${line.text}\n`;
      const last = page.at(-1);
      if (!last) return;
      after = last.line;
    }
  }

  async createBatch(
    principal: Principal,
    input: {
      inputFileId: string;
      endpoint: BatchEndpoint;
      completionWindow: string;
      metadata: Record<string, string> | null;
    },
  ): Promise<Batch> {
    const windowSeconds = parseWindow(input.completionWindow);
    if (windowSeconds === null || windowSeconds > this.#limits.maxWindowSeconds) {
      throw new InvalidRequestError(
        `completion_window must be a duration such as "24h" (at most ${this.#limits.maxWindowSeconds / 3600} h), got "${input.completionWindow}"`,
      );
    }
    const id = `batch_${crypto.randomUUID().replaceAll("-", "")}`;
    return (
      await this.#write(principal, async (tx) => {
        const file = await this.#requireFile(tx, input.inputFileId);
        if (file.kind !== "upload")
          throw new InvalidRequestError(`file ${file.id} is a batch's output, not an input file`);
        const other = await linesForOtherEndpoints(tx, file.id, input.endpoint);
        if (other.length > 0) {
          throw new InvalidRequestError(
            `every request of the file must be for ${input.endpoint}: ${other.map((o) => `line ${o.line} is for ${o.url}`).join("; ")}`,
          );
        }
        await insertBatch(tx, { ...input, id, tenantId: principal.tenantId, windowSeconds });
        return this.#requireBatch(tx, id);
      })
    ).value;
  }

  async getBatch(principal: Principal, id: string): Promise<Batch> {
    return (
      await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) => this.#requireBatch(db, id))
    ).value;
  }

  async listBatches(principal: Principal, after: string | null, limit: number): Promise<Batch[]> {
    return (
      await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) => listBatches(db, after, limit))
    ).value;
  }

  /** Stops a batch: no new line starts, answered ones are kept; it ends as "cancelled". */
  async cancelBatch(principal: Principal, id: string): Promise<Batch> {
    return (
      await this.#write(principal, async (tx) => {
        const batch = await this.#requireBatch(tx, id);
        if (!(await cancelBatch(tx, id)) && batch.status !== "cancelling") {
          throw new AppError("conflict", `batch ${id} is ${batch.status}; only a batch in progress can be cancelled`);
        }
        return this.#requireBatch(tx, id);
      })
    ).value;
  }

  async #requireFile(db: Kysely<Database>, id: string): Promise<BatchFile> {
    const file = await findFile(db, id);
    if (!file) throw new NotFoundError(`no file "${id}"`);
    return file;
  }

  async #requireBatch(db: Kysely<Database>, id: string): Promise<Batch> {
    const batch = await findBatch(db, id);
    if (!batch) throw new NotFoundError(`no batch "${id}"`);
    return batch;
  }

  async #write<T>(principal: Principal, work: (tx: Kysely<Database>) => Promise<T>) {
    return this.#router.write(work, { tenantId: principal.tenantId });
  }
}

/** What is wrong with one line of an input file, if anything (and notes its custom_id). */
function lineProblem(text: string, seen: Map<string, number>, number: number): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "not valid JSON (one request object per line)";
  }
  const parsed = requestLine.safeParse(value);
  if (!parsed.success) {
    return parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(line)"}: ${i.message}`).join("; ");
  }
  const earlier = seen.get(parsed.data.custom_id);
  if (earlier !== undefined) return `custom_id "${parsed.data.custom_id}" repeats line ${earlier}`;
  seen.set(parsed.data.custom_id, number);
  return null;
}

/** "24h", "30m", "90s" in seconds; null when it is not such a duration. */
function parseWindow(text: string): number | null {
  const match = /^(\d{1,6})(s|m|h)$/.exec(text);
  if (!match?.[1]) return null;
  const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600 } as const)[match[2] as "s" | "m" | "h"];
  return seconds > 0 ? seconds : null;
}
