import type PgBoss from "pg-boss";
import { PollSleep } from "./poll-sleep.ts";

/**
 * Fetches one pg-boss job of a queue at a time and runs it, sleeping `pollMs` when the queue is empty,
 * rather than pg-boss's work(): `run` decides how its job ends (complete, fail, send again), and an
 * error it throws (a database that went away) goes to `onError` instead of becoming an unhandled
 * rejection; a job left active then expires and runs again. stop() ends the loop between jobs.
 */
export class SingleJobLoop<T extends object> {
  readonly #boss: PgBoss;
  readonly #queue: string;
  readonly #pollMs: number;
  readonly #run: (job: PgBoss.JobWithMetadata<T>) => Promise<void>;
  readonly #onError: (error: unknown, job: PgBoss.JobWithMetadata<T> | undefined) => Promise<void> | void;
  readonly #pollSleep = new PollSleep();
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(
    boss: PgBoss,
    queue: string,
    pollMs: number,
    handlers: {
      run: (job: PgBoss.JobWithMetadata<T>) => Promise<void>;
      onError: (error: unknown, job: PgBoss.JobWithMetadata<T> | undefined) => Promise<void> | void;
    },
  ) {
    this.#boss = boss;
    this.#queue = queue;
    this.#pollMs = pollMs;
    this.#run = handlers.run;
    this.#onError = handlers.onError;
  }

  /** True once stop() was called: a long job may end early and be picked up again later. */
  get stopping(): boolean {
    return this.#stopping;
  }

  start(): void {
    this.#stopping = false;
    this.#loop = this.#fetchLoop();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pollSleep.wakeAll();
    await this.#loop;
  }

  async #fetchLoop(): Promise<void> {
    while (!this.#stopping) {
      let job: PgBoss.JobWithMetadata<T> | undefined;
      try {
        [job] = await this.#boss.fetch<T>(this.#queue, { batchSize: 1, includeMetadata: true });
        if (job) await this.#run(job);
      } catch (error) {
        await this.#onError(error, job);
        job = undefined;
      }
      if (!job && !this.#stopping) await this.#pollSleep.sleep(this.#pollMs);
    }
  }
}
