import { setTimeout as delay } from "node:timers/promises";
import type PgBoss from "pg-boss";
import type { Logger } from "../logger.ts";
import { SpanKind, TRACING_OFF, type Tracing } from "../tracing.ts";

export type PollLoopState = "created" | "active" | "stopping" | "stopped";

export interface PollLoopOptions<W> {
  /** Names the loop in its log lines. */
  readonly name: string;
  /** The wait after a fetch that found less than a full batch. */
  readonly intervalMs: number;
  /** A fetch that returns this many items fetches again at once: more is probably waiting. */
  readonly fullBatch: number;
  readonly logger: Logger;
  readonly fetch: () => Promise<readonly W[]>;
  readonly run: (work: readonly W[]) => Promise<void>;
  /** The ids a failure's log line names. */
  readonly idsOf: (work: readonly W[]) => readonly string[];
  /** Each run of fetched work is a trace of its own (its statements and inference calls nest under it). */
  readonly tracing?: Tracing | undefined;
}

/**
 * Fetches work and runs it until stopped, in the shape of pg-boss's own worker: explicit states, a
 * wait between fetches that stop() and wake() cut short, stop() that awaits the loop, and an error
 * logged with the ids of the work it hit (never an unhandled rejection). Work an error interrupts
 * is left to its lease: it runs again once the lease expires.
 */
export class PollLoop<W> {
  readonly #options: PollLoopOptions<W>;
  #state: PollLoopState = "created";
  #loop: Promise<void> | undefined;
  #waking = new AbortController();

  constructor(options: PollLoopOptions<W>) {
    this.#options = options;
  }

  get state(): PollLoopState {
    return this.#state;
  }

  /** True once stop() was called: a long run may end early and be picked up again later. */
  get stopping(): boolean {
    return this.#state === "stopping" || this.#state === "stopped";
  }

  /** Starts the loop; a no-op unless it is new or stopped. */
  start(): void {
    if (this.#state !== "created" && this.#state !== "stopped") return;
    this.#state = "active";
    this.#loop = this.#fetchLoop();
  }

  /** Ends the wait in progress, if any: there is work or room for it now. */
  wake(): void {
    this.#waking.abort();
  }

  /** Ends the loop after the work in progress; every call waits for that. */
  async stop(): Promise<void> {
    if (this.#state === "active") {
      this.#state = "stopping";
      this.wake();
    }
    await this.#loop;
    this.#state = this.#state === "created" ? "created" : "stopped";
  }

  async #fetchLoop(): Promise<void> {
    const { name, intervalMs, fullBatch, logger, fetch, run, idsOf } = this.#options;
    const tracing = this.#options.tracing ?? TRACING_OFF;
    while (this.#state === "active") {
      let fetched = 0;
      let work: readonly W[] = [];
      try {
        work = await fetch();
        fetched = work.length;
      } catch (error) {
        logger.warn({ err: error, loop: name }, `${name}: fetching work failed; trying again`);
      }
      try {
        if (fetched > 0) {
          const attributes = { "pgrag.job.loop": name, "pgrag.job.items": fetched, "pgrag.job.ids": idsOf(work) };
          await tracing.span(`job ${name}`, attributes, () => run(work), { kind: SpanKind.CONSUMER });
        }
      } catch (error) {
        logger.error(
          { err: error, loop: name, ids: idsOf(work) },
          `${name}: work failed; it runs again after its lease`,
        );
      }
      if (fetched < fullBatch && this.#state === "active") await this.#wait(intervalMs);
    }
  }

  /** Waits `ms`, or not at all when woken since the last wait. */
  async #wait(ms: number): Promise<void> {
    if (!this.#waking.signal.aborted) await delay(ms, undefined, { signal: this.#waking.signal }).catch(() => {});
    if (this.#waking.signal.aborted) this.#waking = new AbortController();
  }
}

/** A loop over one pg-boss queue: `batchSize` jobs a fetch, their metadata included (retry counts, expiry). */
export function queueLoop<T extends object>(
  boss: PgBoss,
  options: Omit<PollLoopOptions<PgBoss.JobWithMetadata<T>>, "fetch" | "fullBatch" | "idsOf"> & {
    readonly queue: string;
    readonly batchSize: number;
  },
): PollLoop<PgBoss.JobWithMetadata<T>> {
  return new PollLoop({
    ...options,
    fullBatch: options.batchSize,
    fetch: () => boss.fetch<T>(options.queue, { batchSize: options.batchSize, includeMetadata: true }),
    idsOf: (jobs) => jobs.map((job) => job.id),
  });
}
