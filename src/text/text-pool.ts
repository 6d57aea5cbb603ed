import { MessageChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import { Counter, type Registry } from "prom-client";
import { AppError, UnavailableError } from "../errors.ts";
import type { FileFormat } from "../parsing/formats.ts";
import type { Identification } from "../parsing/parse-file.ts";
import type { ParseOutcome } from "../parsing/parsed-document.ts";
import type { Config } from "../config.ts";
import type { Chunk, ChunkingOptions } from "./chunking.ts";
import type { TextTask } from "./text-tasks.ts";
import type { FileTask } from "../parsing/file-tasks.ts";

/**
 * Threads for text work (the event loop never runs it), each document with a time budget from when
 * a thread starts on it, and a bounded queue (past it, 503 with Retry-After); PDF and Office files
 * in threads of their own, each with a heap cap, so a long parse does not hold up chunking.
 */
export type TextPoolOptions = Config["ingest"]["text"];

/** A document whose text work (conversion, parsing, chunking) went over its time or memory budget. Permanent. */
export class TextTooComplexError extends AppError {
  override readonly name = "TextTooComplexError";
  constructor(what: string, budget: string, options?: ErrorOptions) {
    super("unprocessable", `${what} took ${budget}: split the document or simplify it`, options);
  }
}

/**
 * HTML conversion, chunking and file parsing (PDF, Office) of untrusted documents in worker threads
 * with a time budget, so no document — however large or hostile, up to the configured limits —
 * blocks the API's event loop, and one that takes too long is cut off (its thread terminated)
 * instead of stalling the others. Parser threads have a heap cap too; the bytes a parser inflates
 * outside its heap (ArrayBuffers) are not under it, which the zip checks and page limit bound.
 */
export class TextPool {
  readonly #pool: Piscina;
  readonly #parsers: Piscina;
  readonly #identifiers: Piscina;
  readonly #options: TextPoolOptions;
  readonly #tasks: Counter<"kind" | "outcome">;

  constructor(options: TextPoolOptions, registry: Registry) {
    this.#options = options;
    this.#tasks = new Counter({
      name: "pgrag_text_tasks_total",
      help: "Text tasks run in the worker threads, by kind (chunk, html-to-markdown, identify-file, parse-file) and outcome (done, over_budget, failed)",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    });
    this.#pool = new Piscina({
      filename: new URL("./text-worker.cjs", import.meta.url).href,
      workerData: { tasks: new URL("./text-tasks.ts", import.meta.url).href },
      // Threads stay warm (and one cut off is replaced at once): starting one costs the loader's start-up.
      minThreads: options.threads,
      maxThreads: options.threads,
    });
    // Identifying an upload (in its request) has a thread of its own: it never waits behind the
    // ingestion's parses of other tenants' files, which may each take their whole budget.
    this.#identifiers = fileThreads(options.parsing, 1);
    this.#parsers = fileThreads(options.parsing, options.parsing.threads);
  }

  async htmlToMarkdown(html: string): Promise<string> {
    return (await this.#run({ kind: "html-to-markdown", html }, "converting the HTML")) as string;
  }

  async chunk(text: string, options: ChunkingOptions): Promise<Chunk[]> {
    return (await this.#run({ kind: "chunk", text, options }, "chunking the document")) as Chunk[];
  }

  /** What a file is, from its bytes; an Office file's archive is checked for zip bombs on the way. */
  async identifyFile(bytes: Uint8Array): Promise<Identification> {
    const task: FileTask = { kind: "identify-file", bytes, limits: this.#options.parsing.limits };
    return (await this.#run(task, "identifying the file")) as Identification;
  }

  async parseFile(bytes: Uint8Array, format: FileFormat): Promise<ParseOutcome> {
    const task: FileTask = { kind: "parse-file", bytes, format, limits: this.#options.parsing.limits };
    return (await this.#run(task, `parsing the ${format.toUpperCase()} file`)) as ParseOutcome;
  }

  async close(): Promise<void> {
    await Promise.all([this.#pool, this.#parsers, this.#identifiers].map((pool) => pool.close({ force: true })));
  }

  async #run(task: TextTask | FileTask, what: string): Promise<unknown> {
    const isFile = task.kind === "identify-file" || task.kind === "parse-file";
    const pool = task.kind === "identify-file" ? this.#identifiers : isFile ? this.#parsers : this.#pool;
    const timeoutMs = isFile ? this.#options.parsing.timeoutMs : this.#options.timeoutMs;
    if (pool.queueSize >= this.#options.maxQueued) {
      throw new UnavailableError("the text-processing queue is full; retry shortly", { retryAfterSeconds: 1 });
    }
    const budget = new AbortController();
    const { port1: startedSignal, port2: started } = new MessageChannel();
    let timer: NodeJS.Timeout | undefined;
    startedSignal.once("message", () => {
      timer = setTimeout(() => budget.abort(), timeoutMs);
    });
    try {
      const result: unknown = await pool.run({ task, started }, { signal: budget.signal, transferList: [started] });
      this.#tasks.inc({ kind: task.kind, outcome: "done" });
      return result;
    } catch (error) {
      const outOfMemory = (error as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
      this.#tasks.inc({ kind: task.kind, outcome: budget.signal.aborted || outOfMemory ? "over_budget" : "failed" });
      if (budget.signal.aborted) {
        const setting = isFile ? "PGRAG_PARSE_TIMEOUT_MS" : "PGRAG_TEXT_TIMEOUT_MS";
        throw new TextTooComplexError(what, `longer than ${timeoutMs} ms (${setting})`, { cause: error });
      }
      if (outOfMemory) {
        const budgetText = `more than ${this.#options.parsing.memoryMb} MB of memory (PGRAG_PARSE_MEMORY_MB)`;
        throw new TextTooComplexError(what, budgetText, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
      startedSignal.close();
    }
  }
}

/**
 * Threads for files, started when a file comes (most deployments never parse one, and a parser's
 * libraries are large), each with the parsers' heap cap.
 */
function fileThreads(parsing: TextPoolOptions["parsing"], threads: number): Piscina {
  return new Piscina({
    filename: new URL("./text-worker.cjs", import.meta.url).href,
    workerData: { tasks: new URL("../parsing/file-tasks.ts", import.meta.url).href },
    minThreads: 0,
    maxThreads: threads,
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: parsing.memoryMb, maxYoungGenerationSizeMb: 64 },
  });
}
