import { Gauge, type Registry } from "prom-client";
import { AppError } from "../errors.ts";

interface Waiter {
  admit: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Admission control for the inference backend: at most `maxConcurrent` upstream requests at once,
 * at most `maxQueued` waiting for a slot (each for at most `maxWaitMs`). Past that, callers get
 * 429 with Retry-After at once instead of piling up on an expensive GPU.
 */
export class AdmissionControl {
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #maxWaitMs: number;
  #active = 0;
  readonly #queue: Waiter[] = [];

  constructor(options: { maxConcurrent: number; maxQueued: number; maxWaitMs: number }, registry: Registry) {
    this.#maxConcurrent = options.maxConcurrent;
    this.#maxQueued = options.maxQueued;
    this.#maxWaitMs = options.maxWaitMs;
    const counts = () => ({ active: this.#active, queued: this.#queue.length });
    new Gauge({
      name: "pgrag_inference_admission",
      help: "Upstream inference requests running and waiting for a slot",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const { active, queued } = counts();
        this.set({ state: "active" }, active);
        this.set({ state: "queued" }, queued);
      },
    });
  }

  /** Resolves with a release function once a slot is free; rejects with 429 when the queue is full. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#active < this.#maxConcurrent) {
      this.#active++;
      return this.#releaser();
    }
    if (this.#queue.length >= this.#maxQueued) throw this.#busy();
    await new Promise<void>((resolve, reject) => {
      const entry: Waiter = {
        admit: () => {
          clearTimeout(entry.timer);
          resolve();
        },
        reject,
        timer: setTimeout(() => {
          this.#remove(entry);
          reject(this.#busy());
        }, this.#maxWaitMs),
      };
      this.#queue.push(entry);
      signal?.addEventListener("abort", () => {
        if (this.#remove(entry)) {
          clearTimeout(entry.timer);
          reject(new AppError("timeout", "the client went away while waiting for the inference backend"));
        }
      });
    });
    return this.#releaser();
  }

  #remove(entry: Waiter): boolean {
    const index = this.#queue.indexOf(entry);
    if (index >= 0) this.#queue.splice(index, 1);
    return index >= 0;
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      // The slot passes straight to the next waiter, so `active` stays the same.
      if (next) next.admit();
      else this.#active--;
    };
  }

  #busy(): AppError {
    return new AppError("rate_limited", "the inference backend is at capacity; retry shortly", {
      retryAfterSeconds: 1,
    });
  }
}
