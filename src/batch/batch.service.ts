import type { Kysely } from "kysely";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import { AppError, InvalidRequestError, NotFoundError } from "../errors.ts";
import type { Principal } from "../tenancy/principal.ts";
import type { Quotas } from "../tenancy/quotas.ts";
import { deepJsonProblem } from "../text/json-depth.ts";
import {
  appendFileLines,
  type Batch,
  type BatchEndpoint,
  type BatchFile,
  cancelBatch,
  batchesReading,
  deleteFile,
  deleteFinishedBatch,
  fileLines,
  findBatch,
  findFile,
  insertBatch,
  insertFile,
  linesForOtherEndpoints,
  listBatches,
  listFiles,
  lockFile,
  setFileExpiry,
} from "./batches.repository.ts";

/** An uploaded form as it arrives: text fields whole, the file line by line. */
export type FormEvent =
  | { readonly kind: "field"; readonly name: string; readonly value: string }
  | { readonly kind: "line"; readonly filename: string; readonly number: number; readonly text: string };

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
/** Lines written per transaction while a file streams in. */
const LINES_PER_WRITE = 1_000;

export interface BatchLimits {
  readonly maxLines: number;
  /** A file's life when its upload sets none (PGRAG_FILE_EXPIRE_SECONDS). */
  readonly fileExpireSeconds: number;
  /** Longest completion window accepted, in seconds (OpenAI's is 24 h). */
  readonly maxWindowSeconds: number;
}

/** OpenAI-compatible files and batches, tenant by tenant (row-level security scopes every statement). */
export class BatchService {
  readonly #router: Router;
  readonly #quotas: Quotas;
  readonly #limits: BatchLimits;

  constructor(router: Router, quotas: Quotas, limits: BatchLimits) {
    this.#router = router;
    this.#quotas = quotas;
    this.#limits = limits;
  }

  /**
   * Stores an input file as it streams in, checking every line; refuses it (and keeps nothing) with
   * each bad line's number and reason.
   */
  async uploadFile(principal: Principal, form: AsyncIterable<FormEvent>): Promise<BatchFile> {
    const file = { id: `file-${crypto.randomUUID().replaceAll("-", "")}`, tenantId: principal.tenantId };
    let created = false;
    let purpose: string | null = null;
    const expiresAfter: { anchor?: string; seconds?: string } = {};
    let pending: string[] = [];
    let stored = 0;
    let lines = 0;
    const errors: { line: number; message: string }[] = [];
    const seen = new Map<string, number>();
    const flush = async () => {
      if (pending.length === 0) return;
      const written = pending;
      pending = [];
      await this.#write(principal, async (tx) => {
        await appendFileLines(tx, file, stored + 1, written);
        await this.#quotas.refuseIfOverStorage(tx, principal.tenantId);
      });
      stored += written.length;
    };
    try {
      for await (const event of form) {
        if (event.kind === "field") {
          if (event.name === "purpose") purpose = event.value;
          // OpenAI's files.create sends expires_after as these two fields.
          if (event.name === "expires_after[anchor]") expiresAfter.anchor = event.value;
          if (event.name === "expires_after[seconds]") expiresAfter.seconds = event.value;
          continue;
        }
        const text = event.text.trim();
        if (text === "") continue;
        // Bad lines count too: a file of nothing but bad lines is as long as its good twin.
        lines += 1;
        if (lines > this.#limits.maxLines) {
          throw new AppError(
            "payload_too_large",
            `more than ${this.#limits.maxLines} requests in one file (PGRAG_BATCH_MAX_LINES)`,
          );
        }
        if (!created) {
          const filename = event.filename || "batch.jsonl";
          await this.#write(principal, async (tx) => {
            await this.#quotas.reserve(tx, principal.tenantId, "files");
            await insertFile(tx, { ...file, filename, expireSeconds: this.#limits.fileExpireSeconds });
          });
          created = true;
        }
        const problem = lineProblem(text, seen, event.number);
        if (problem) {
          // The file is refused once it has a bad line: nothing more is kept of it, and the report
          // stops at ERRORS_SHOWN lines instead of growing with the upload.
          pending = [];
          errors.push({ line: event.number, message: problem });
          if (errors.length >= ERRORS_SHOWN) break;
        } else if (errors.length === 0) {
          pending.push(text);
          if (pending.length >= LINES_PER_WRITE) await flush();
        }
      }
      if (errors.length > 0) throw badLines(errors);
      await flush();
      if (purpose !== "batch") {
        throw new InvalidRequestError(
          `purpose must be "batch" (files here are inputs of batches), got "${purpose ?? "none"}"`,
        );
      }
      if (!created) throw new InvalidRequestError("the batch file holds no requests: one JSON request per line");
      const lifetime = expirySeconds(expiresAfter);
      return (
        await this.#write(principal, async (tx) => {
          if (lifetime !== null) await setFileExpiry(tx, file.id, lifetime);
          return this.#requireFile(tx, file.id);
        })
      ).value;
    } catch (error) {
      if (created) await this.#write(principal, (tx) => deleteFile(tx, file.id));
      throw error;
    }
  }

  /** Deletes a file: a batch's output, or an upload no unfinished batch reads its requests from. */
  async deleteFile(principal: Principal, id: string): Promise<void> {
    await this.#write(principal, async (tx) => {
      if (!(await lockFile(tx, id, "update"))) throw new NotFoundError(`no file "${id}"`);
      const readers = await batchesReading(tx, id);
      if (readers.length > 0) {
        throw new AppError(
          "conflict",
          `file ${id} holds the requests of batch ${readers.join(", ")}, which has not ended; cancel it or wait for it first`,
        );
      }
      await deleteFile(tx, id);
    });
  }

  async listFiles(
    principal: Principal,
    page: { after: string | null; limit: number; purpose: string | null },
  ): Promise<BatchFile[]> {
    return (await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) => listFiles(db, page)))
      .value;
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
        // Held until the batch is in: a delete of the file waits, then sees the batch that reads it.
        await lockFile(tx, input.inputFileId, "share");
        const file = await this.#requireFile(tx, input.inputFileId);
        if (file.kind !== "upload")
          throw new InvalidRequestError(`file ${file.id} is a batch's output, not an input file`);
        const other = await linesForOtherEndpoints(tx, file.id, input.endpoint);
        if (other.length > 0) {
          throw new InvalidRequestError(
            `every request of the file must be for ${input.endpoint}: ${other.map((o) => `line ${o.line} is for ${o.url}`).join("; ")}`,
          );
        }
        await this.#quotas.reserve(tx, principal.tenantId, "running_batches");
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

  /** Deletes a finished batch, its lines and its output and error files (its input file stays). */
  async deleteBatch(principal: Principal, id: string): Promise<void> {
    await this.#write(principal, async (tx) => {
      const batch = await this.#requireBatch(tx, id);
      if (!(await deleteFinishedBatch(tx, id))) {
        throw new AppError("conflict", `batch ${id} is ${batch.status}; cancel it and wait for it to end first`);
      }
    });
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
    return this.#router.write({ tenantId: principal.tenantId }, work);
  }
}

/** The refusal of a file with bad lines: the first few in the message, up to ERRORS_SHOWN in the details. */
function badLines(errors: readonly { line: number; message: string }[]): InvalidRequestError {
  const shown = errors.slice(0, 5).map((e) => `line ${e.line}: ${e.message}`);
  const more =
    errors.length >= ERRORS_SHOWN
      ? `; … (reading stopped at ${ERRORS_SHOWN} bad lines)`
      : errors.length > 5
        ? "; …"
        : "";
  return new InvalidRequestError(`the batch file has ${errors.length} bad line(s): ${shown.join("; ")}${more}`, {
    details: errors,
  });
}

/** What is wrong with one line of an input file, if anything (and notes its custom_id). */
function lineProblem(text: string, seen: Map<string, number>, number: number): string | null {
  const deep = deepJsonProblem(text);
  if (deep) return deep;
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

/** Longest life an upload may ask for (OpenAI's is 30 days). */
const MAX_EXPIRY_SECONDS = 366 * 86_400;

/** The life an upload's `expires_after` asks for, in seconds (null: none asked, the default applies). */
function expirySeconds(expiresAfter: { anchor?: string; seconds?: string }): number | null {
  if (expiresAfter.anchor === undefined && expiresAfter.seconds === undefined) return null;
  if (expiresAfter.anchor !== "created_at") {
    throw new InvalidRequestError(`expires_after[anchor] must be "created_at", got "${expiresAfter.anchor ?? "none"}"`);
  }
  const seconds = Number(expiresAfter.seconds);
  if (!Number.isInteger(seconds) || seconds < 60 || seconds > MAX_EXPIRY_SECONDS) {
    throw new InvalidRequestError(
      `expires_after[seconds] must be a whole number of seconds from 60 to ${MAX_EXPIRY_SECONDS}, got "${expiresAfter.seconds ?? "none"}"`,
    );
  }
  return seconds;
}

/** "24h", "30m", "90s" in seconds; null when it is not such a duration. */
function parseWindow(text: string): number | null {
  const match = /^(\d{1,6})(s|m|h)$/.exec(text);
  if (!match?.[1]) return null;
  const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600 } as const)[match[2] as "s" | "m" | "h"];
  return seconds > 0 ? seconds : null;
}
