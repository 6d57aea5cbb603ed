import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { AppError } from "../errors.ts";

/** Interactive requests (chat) go first; batch work only takes capacity they leave free. */
export type Priority = "interactive" | "batch";

interface Waiter {
  readonly tenantId: string;
  readonly priority: Priority;
  readonly since: number;
  admit: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** A slot held by one upstream request. */
interface Grant {
  readonly priority: Priority;
  /** Set for a batch request that may be stopped so that an interactive one takes its slot. */
  readonly preempt: (() => void) | undefined;
  /** Its slot went to an interactive request: releasing it frees nothing. */
  handedOver: boolean;
  released: boolean;
}

export interface AcquireOptions {
  /** The caller went away: stop waiting. */
  readonly signal?: AbortSignal | undefined;
  readonly priority?: Priority | undefined;
  /**
   * For batch requests: stops the request when an interactive one needs its slot (the slot goes to
   * that request at once; the stopped work is the caller's to run again).
   */
  readonly preempt?: (() => void) | undefined;
}

/**
 * The one scheduler of the inference backend, for interactive chat and batch work: at most
 * `maxConcurrent` upstream requests at once.
 *
 * Interactive requests come first: at most `maxQueued` wait for a slot (each for at most
 * `maxWaitMs`); past that, 429 with Retry-After at once instead of piling up on an expensive GPU.
 * Batch requests wait without bound (their runner bounds how many it asks for) and are admitted only
 * while no interactive request waits and fewer than `maxConcurrent - reservedForInteractive` slots
 * are taken — then they fill that capacity, so the backend is not idle while batch work waits, and
 * the reserved slots let a new interactive request start without waiting for a batch request.
 *
 * With preemption on, batch work may take every slot: an interactive request that finds none free
 * takes the slot of the most recently started preemptible batch request (the one with the least work
 * to lose), which is stopped and run again later. Interactive latency then does not depend on batch
 * load at all, and the backend stays full; the price is the stopped requests' partial work.
 *
 * Fair between tenants within a class: each tenant waits in a queue of its own, and a freed slot goes
 * to the tenants in turn (round robin), so under saturation every waiting tenant is served at the
 * same rate whatever its arrival rate. When the interactive queue is full, a newcomer displaces the
 * newest waiter of the tenant with the longest queue (that one gets the 429), so one tenant cannot
 * fill the queue and shut the others out.
 */
export class AdmissionControl {
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #maxWaitMs: number;
  readonly #batchLimit: number;
  readonly #preemptBatch: boolean;
  /** Running preemptible batch grants in the order they started: the last is the youngest. */
  readonly #preemptible = new Set<Grant>();
  #active = 0;
  readonly #activeByClass: Record<Priority, number> = { interactive: 0, batch: 0 };
  /** Waiters per class and tenant; each Map's order is the round robin (a served tenant moves to the end). */
  readonly #queues: Record<Priority, Map<string, Waiter[]>> = { interactive: new Map(), batch: new Map() };
  readonly #queuedByClass: Record<Priority, number> = { interactive: 0, batch: 0 };
  readonly #waitSeconds: Histogram<"class" | "tenant">;
  readonly #busySeconds: Counter;
  readonly #preemptions: Counter;
  /** When `#active` last changed: the busy time since then is `#active / maxConcurrent` of it. */
  #busySince = performance.now();
  #busyTotal = 0;

  constructor(
    options: {
      maxConcurrent: number;
      maxQueued: number;
      maxWaitMs: number;
      reservedForInteractive?: number;
      preemptBatch?: boolean;
      /** Its metrics' names start with this: one scheduler per kind of upstream request (chat, embeddings). */
      metricPrefix?: string;
    },
    registry: Registry,
  ) {
    const prefix = options.metricPrefix ?? "pgrag_inference";
    this.#maxConcurrent = options.maxConcurrent;
    this.#maxQueued = options.maxQueued;
    this.#maxWaitMs = options.maxWaitMs;
    // Batch work always gets at least one slot, however small the backend.
    this.#batchLimit = Math.max(1, options.maxConcurrent - (options.reservedForInteractive ?? 0));
    this.#preemptBatch = options.preemptBatch ?? false;
    const counts = () => ({
      active: this.#active,
      queued: this.#queuedByClass.interactive,
      tenants: this.#queues.interactive.size,
    });
    new Gauge({
      name: `${prefix}_admission`,
      help: "Upstream inference requests running and interactive ones waiting for a slot, and tenants waiting",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const { active, queued, tenants } = counts();
        this.set({ state: "active" }, active);
        this.set({ state: "queued" }, queued);
        this.set({ state: "waiting_tenants" }, tenants);
      },
    });
    const queues = this.#queues;
    const activeByClass = this.#activeByClass;
    new Gauge({
      name: `${prefix}_queue_depth`,
      help: "Upstream inference requests waiting for a slot, by class (interactive, batch) and tenant",
      labelNames: ["class", "tenant"],
      registers: [registry],
      collect() {
        this.reset();
        for (const priority of ["interactive", "batch"] as const) {
          for (const [tenant, waiting] of queues[priority]) this.set({ class: priority, tenant }, waiting.length);
        }
      },
    });
    new Gauge({
      name: `${prefix}_active`,
      help: "Upstream inference requests running, by class",
      labelNames: ["class"],
      registers: [registry],
      collect() {
        for (const priority of ["interactive", "batch"] as const)
          this.set({ class: priority }, activeByClass[priority]);
      },
    });
    this.#waitSeconds = new Histogram({
      name: `${prefix}_wait_seconds`,
      help: "Time from asking for an inference slot to getting it, by class and tenant",
      labelNames: ["class", "tenant"],
      buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers: [registry],
    });
    this.#busySeconds = new Counter({
      name: `${prefix}_busy_seconds_total`,
      help: "Backend busy time: seconds weighted by the share of slots taken (its rate is the busy fraction)",
      registers: [registry],
    });
    this.#preemptions = new Counter({
      name: `${prefix}_preemptions_total`,
      help: "Batch requests stopped so that an interactive request could take their slot",
      registers: [registry],
    });
  }

  /** The backend's busy time so far, in slot-seconds over maxConcurrent (the counter's value, for benches). */
  busySeconds(): number {
    this.#accountBusy();
    return this.#busyTotal;
  }

  /**
   * Resolves with a release function once a slot is free. Interactive: takes a preemptible batch
   * request's slot if none is free, and rejects with 429 when the queue is full or the wait too long.
   * Batch: waits for capacity interactive work leaves free.
   */
  async acquire(tenantId: string, options: AcquireOptions = {}): Promise<() => void> {
    const { signal, priority = "interactive" } = options;
    const grant: Grant = {
      priority,
      preempt: this.#preemptBatch && priority === "batch" ? options.preempt : undefined,
      handedOver: false,
      released: false,
    };
    if (this.#canStart(priority)) {
      this.#start(grant, tenantId, performance.now());
      return this.#releaser(grant);
    }
    if (priority === "interactive" && this.#takeOverBatchSlot(tenantId)) return this.#releaser(grant);
    if (
      priority === "interactive" &&
      this.#queuedByClass.interactive >= this.#maxQueued &&
      !this.#displaceFor(tenantId)
    ) {
      throw this.#busy();
    }
    const since = performance.now();
    await new Promise<void>((resolve, reject) => {
      const entry: Waiter = {
        tenantId,
        priority,
        since,
        admit: () => {
          clearTimeout(entry.timer);
          this.#start(grant, tenantId, since);
          resolve();
        },
        reject,
        timer:
          priority === "interactive"
            ? setTimeout(() => {
                this.#remove(entry);
                reject(this.#busy());
              }, this.#maxWaitMs)
            : undefined,
      };
      this.#enqueue(entry);
      signal?.addEventListener("abort", () => {
        if (this.#remove(entry)) {
          clearTimeout(entry.timer);
          reject(new AppError("timeout", "the client went away while waiting for the inference backend"));
        }
      });
    });
    return this.#releaser(grant);
  }

  /** Stops the youngest preemptible batch request and gives its slot to an interactive one. */
  #takeOverBatchSlot(tenantId: string): boolean {
    const victim = [...this.#preemptible].at(-1);
    if (!victim?.preempt) return false;
    this.#preemptible.delete(victim);
    victim.handedOver = true;
    this.#activeByClass.batch--;
    this.#activeByClass.interactive++;
    this.#waitSeconds.observe({ class: "interactive", tenant: tenantId }, 0);
    this.#preemptions.inc();
    victim.preempt();
    return true;
  }

  #canStart(priority: Priority): boolean {
    if (priority === "interactive") return this.#active < this.#maxConcurrent && this.#queuedByClass.interactive === 0;
    return this.#active < this.#batchLimit && this.#queuedByClass.interactive === 0 && this.#queuedByClass.batch === 0;
  }

  #start(grant: Grant, tenantId: string, since: number): void {
    this.#accountBusy();
    this.#active++;
    this.#activeByClass[grant.priority]++;
    if (grant.preempt) this.#preemptible.add(grant);
    this.#waitSeconds.observe({ class: grant.priority, tenant: tenantId }, (performance.now() - since) / 1000);
  }

  #enqueue(entry: Waiter): void {
    const queues = this.#queues[entry.priority];
    const queue = queues.get(entry.tenantId);
    if (queue) queue.push(entry);
    else queues.set(entry.tenantId, [entry]);
    this.#queuedByClass[entry.priority]++;
  }

  #remove(entry: Waiter): boolean {
    const queues = this.#queues[entry.priority];
    const queue = queues.get(entry.tenantId);
    const index = queue?.indexOf(entry) ?? -1;
    if (!queue || index < 0) return false;
    queue.splice(index, 1);
    if (queue.length === 0) queues.delete(entry.tenantId);
    this.#queuedByClass[entry.priority]--;
    return true;
  }

  /** Makes room for `tenantId` by refusing the newest interactive waiter of a tenant that waits with more. */
  #displaceFor(tenantId: string): boolean {
    const queues = this.#queues.interactive;
    const own = queues.get(tenantId)?.length ?? 0;
    let longest: Waiter[] | undefined;
    for (const queue of queues.values()) if (!longest || queue.length > longest.length) longest = queue;
    const victim = longest?.at(-1);
    if (!victim || (longest?.length ?? 0) <= own + 1) return false;
    this.#remove(victim);
    clearTimeout(victim.timer);
    victim.reject(this.#busy());
    return true;
  }

  /** The next waiter of a class in round-robin order across its tenants. */
  #next(priority: Priority): Waiter | undefined {
    const queues = this.#queues[priority];
    for (const [tenantId, queue] of queues) {
      const waiter = queue.shift();
      queues.delete(tenantId);
      if (queue.length > 0) queues.set(tenantId, queue); // to the back of the round
      if (waiter) {
        this.#queuedByClass[priority]--;
        return waiter;
      }
    }
    return undefined;
  }

  #releaser(grant: Grant): () => void {
    return () => {
      if (grant.released) return;
      grant.released = true;
      this.#preemptible.delete(grant);
      if (grant.handedOver) return;
      this.#accountBusy();
      this.#active--;
      this.#activeByClass[grant.priority]--;
      this.#dispatch();
    };
  }

  /** Hands free slots to waiters: interactive ones first, then batch ones within the batch limit. */
  #dispatch(): void {
    for (;;) {
      const priority: Priority | undefined =
        this.#queuedByClass.interactive > 0 && this.#active < this.#maxConcurrent
          ? "interactive"
          : this.#queuedByClass.interactive === 0 && this.#queuedByClass.batch > 0 && this.#active < this.#batchLimit
            ? "batch"
            : undefined;
      const next = priority && this.#next(priority);
      if (!next) return;
      next.admit();
    }
  }

  #accountBusy(): void {
    const now = performance.now();
    const seconds = ((now - this.#busySince) / 1000) * (this.#active / this.#maxConcurrent);
    this.#busySince = now;
    this.#busyTotal += seconds;
    this.#busySeconds.inc(seconds);
  }

  #busy(): AppError {
    return new AppError("rate_limited", "the inference backend is at capacity; retry shortly", {
      retryAfterSeconds: 1,
    });
  }
}
