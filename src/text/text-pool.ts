import { MessageChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import { Counter, type Registry } from "prom-client";
import { AppError, UnavailableError } from "../errors.ts";
import type { Chunk, ChunkingOptions } from "./chunking.ts";
import type { TextTask } from "./text-tasks.ts";

export interface TextPoolOptions {
  /** Threads for text work; the event loop never runs it. */
  readonly threads: number;
  /** Budget per document from when a thread starts on it: past it the thread is terminated and the document refused. */
  readonly timeoutMs: number;
  /** Documents that may wait for a thread; past it, 503 with Retry-After. */
  readonly maxQueued: number;
}

/** A document whose text work (HTML conversion, chunking) did not finish in its budget. Permanent. */
export class TextTooComplexError extends AppError {
  override readonly name = "TextTooComplexError";
  constructor(what: string, timeoutMs: number, options?: ErrorOptions) {
    super(
      "unprocessable",
      `${what} took longer than ${timeoutMs} ms (PGRAG_TEXT_TIMEOUT_MS): split the document or simplify its markup`,
      options,
    );
  }
}

/**
 * HTML conversion and chunking of untrusted documents in worker threads with a time budget, so no
 * document — however large or hostile, up to the configured limits — blocks the API's event loop,
 * and one that takes too long is cut off (its thread terminated) instead of stalling the others.
 */
export class TextPool {
  readonly #pool: Piscina;
  readonly #options: TextPoolOptions;
  readonly #tasks: Counter<"kind" | "outcome">;

  constructor(options: TextPoolOptions, registry: Registry) {
    this.#options = options;
    this.#tasks = new Counter({
      name: "pgrag_text_tasks_total",
      help: "Text tasks run in the worker threads, by kind (chunk, html-to-markdown) and outcome (done, over_budget, failed)",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    });
    this.#pool = new Piscina({
      filename: new URL("./text-worker.cjs", import.meta.url).href,
      // Threads stay warm (and one cut off is replaced at once): starting one costs the loader's start-up.
      minThreads: options.threads,
      maxThreads: options.threads,
    });
  }

  async htmlToMarkdown(html: string): Promise<string> {
    return (await this.#run({ kind: "html-to-markdown", html }, "converting the HTML")) as string;
  }

  async chunk(text: string, options: ChunkingOptions): Promise<Chunk[]> {
    return (await this.#run({ kind: "chunk", text, options }, "chunking the document")) as Chunk[];
  }

  async close(): Promise<void> {
    await this.#pool.close({ force: true });
  }

  async #run(task: TextTask, what: string): Promise<unknown> {
    if (this.#pool.queueSize >= this.#options.maxQueued) {
      throw new UnavailableError("the text-processing queue is full; retry shortly", { retryAfterSeconds: 1 });
    }
    const budget = new AbortController();
    const { port1: startedSignal, port2: started } = new MessageChannel();
    let timer: NodeJS.Timeout | undefined;
    startedSignal.once("message", () => {
      timer = setTimeout(() => budget.abort(), this.#options.timeoutMs);
    });
    try {
      const result: unknown = await this.#pool.run(
        { task, started },
        { signal: budget.signal, transferList: [started] },
      );
      this.#tasks.inc({ kind: task.kind, outcome: "done" });
      return result;
    } catch (error) {
      this.#tasks.inc({ kind: task.kind, outcome: budget.signal.aborted ? "over_budget" : "failed" });
      if (budget.signal.aborted) throw new TextTooComplexError(what, this.#options.timeoutMs, { cause: error });
      throw error;
    } finally {
      clearTimeout(timer);
      startedSignal.close();
    }
  }
}
