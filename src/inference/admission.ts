import { Gauge, type Registry } from "prom-client";
import { AppError } from "../errors.ts";

interface Waiter {
  readonly tenantId: string;
  admit: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Admission control for the inference backend: at most `maxConcurrent` upstream requests at once,
 * at most `maxQueued` waiting for a slot (each for at most `maxWaitMs`); past that, 429 with
 * Retry-After at once instead of piling up on an expensive GPU.
 *
 * Fair between tenants: each tenant waits in a queue of its own, and a freed slot goes to the
 * tenants in turn (round robin), so under saturation every waiting tenant is served at the same
 * rate whatever its arrival rate. When the queue is full, a newcomer displaces the newest waiter of
 * the tenant with the longest queue (that one gets the 429), so one tenant cannot fill the queue and
 * shut the others out.
 */
export class AdmissionControl {
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #maxWaitMs: number;
  #active = 0;
  /** Waiters per tenant; the Map's order is the round robin (a served tenant moves to the end). */
  readonly #queues = new Map<string, Waiter[]>();
  #queued = 0;

  constructor(options: { maxConcurrent: number; maxQueued: number; maxWaitMs: number }, registry: Registry) {
    this.#maxConcurrent = options.maxConcurrent;
    this.#maxQueued = options.maxQueued;
    this.#maxWaitMs = options.maxWaitMs;
    const counts = () => ({ active: this.#active, queued: this.#queued, tenants: this.#queues.size });
    new Gauge({
      name: "pgrag_inference_admission",
      help: "Upstream inference requests running and waiting for a slot, and tenants waiting",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const { active, queued, tenants } = counts();
        this.set({ state: "active" }, active);
        this.set({ state: "queued" }, queued);
        this.set({ state: "waiting_tenants" }, tenants);
      },
    });
  }

  /** Resolves with a release function once a slot is free; rejects with 429 when the queue is full. */
  async acquire(tenantId: string, signal?: AbortSignal): Promise<() => void> {
    if (this.#active < this.#maxConcurrent && this.#queued === 0) {
      this.#active++;
      return this.#releaser();
    }
    if (this.#queued >= this.#maxQueued && !this.#displaceFor(tenantId)) throw this.#busy();
    await new Promise<void>((resolve, reject) => {
      const entry: Waiter = {
        tenantId,
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
      this.#enqueue(entry);
      signal?.addEventListener("abort", () => {
        if (this.#remove(entry)) {
          clearTimeout(entry.timer);
          reject(new AppError("timeout", "the client went away while waiting for the inference backend"));
        }
      });
    });
    return this.#releaser();
  }

  #enqueue(entry: Waiter): void {
    const queue = this.#queues.get(entry.tenantId);
    if (queue) queue.push(entry);
    else this.#queues.set(entry.tenantId, [entry]);
    this.#queued++;
  }

  #remove(entry: Waiter): boolean {
    const queue = this.#queues.get(entry.tenantId);
    const index = queue?.indexOf(entry) ?? -1;
    if (!queue || index < 0) return false;
    queue.splice(index, 1);
    if (queue.length === 0) this.#queues.delete(entry.tenantId);
    this.#queued--;
    return true;
  }

  /** Makes room for `tenantId` by refusing the newest waiter of a tenant that waits with more. */
  #displaceFor(tenantId: string): boolean {
    const own = this.#queues.get(tenantId)?.length ?? 0;
    let longest: Waiter[] | undefined;
    for (const queue of this.#queues.values()) if (!longest || queue.length > longest.length) longest = queue;
    const victim = longest?.at(-1);
    if (!victim || (longest?.length ?? 0) <= own + 1) return false;
    this.#remove(victim);
    clearTimeout(victim.timer);
    victim.reject(this.#busy());
    return true;
  }

  /** The next waiter in round-robin order across tenants. */
  #next(): Waiter | undefined {
    for (const [tenantId, queue] of this.#queues) {
      const waiter = queue.shift();
      this.#queues.delete(tenantId);
      if (queue.length > 0) this.#queues.set(tenantId, queue); // to the back of the round
      if (waiter) {
        this.#queued--;
        return waiter;
      }
    }
    return undefined;
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#next();
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
