import { sql } from "kysely";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";

export interface UsageEvent {
  readonly tenantId: string;
  readonly kind: "search" | "chat" | "feedback";
  readonly requestId?: string;
  readonly httpStatus?: number;
  readonly latencyMs?: number;
  readonly payload: Record<string, unknown>;
}

export interface EventRecorderOptions {
  readonly bufferSize: number;
  readonly flushIntervalMs: number;
  readonly retentionDays: number;
}

const MAX_BATCH = 1_000;

type BufferedEvent = UsageEvent & { readonly occurredAt: string };

function eventRow(e: BufferedEvent) {
  return {
    occurred_at: e.occurredAt,
    tenant_id: e.tenantId,
    kind: e.kind,
    request_id: e.requestId ?? null,
    http_status: e.httpStatus ?? null,
    latency_ms: e.latencyMs ?? null,
    payload: e.payload,
  };
}

/**
 * The payload as jsonb can store it: PostgreSQL refuses NUL characters and unpaired surrogates in
 * JSON strings, and request text (a search query, a question) may carry either.
 */
function storablePayload(payload: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(payload, (_key, value: unknown) =>
      typeof value === "string" ? value.replaceAll("\u0000", "\uFFFD").toWellFormed() : value,
    ),
  ) as Record<string, unknown>;
}

/** SQLSTATE class 22 (data exception) or 23 (integrity violation): retrying the same rows cannot help. */
function isInvalidData(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"));
}
const MAINTENANCE_EVERY_MS = 3_600_000;

/**
 * Usage events written asynchronously in batches, so the read path never waits on the primary.
 * Memory is bounded: when the buffer is full, new events are dropped and counted
 * (pgrag_events_dropped_total). A failed flush keeps its events for the next one. `stop()` flushes
 * everything that is left, so a graceful shutdown loses nothing.
 */
export class EventRecorder {
  readonly #router: Router;
  readonly #logger: Logger;
  readonly #options: EventRecorderOptions;
  #buffer: BufferedEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #lastMaintenance = 0;
  readonly #dropped: Counter;
  readonly #written: Counter;
  readonly #rejected: Counter;

  constructor(router: Router, logger: Logger, registry: Registry, options: EventRecorderOptions) {
    this.#router = router;
    this.#logger = logger;
    this.#options = options;
    this.#dropped = new Counter({
      name: "pgrag_events_dropped_total",
      help: "Usage events dropped because the buffer was full",
      registers: [registry],
    });
    this.#written = new Counter({
      name: "pgrag_events_written_total",
      help: "Usage events written to analytics.events",
      registers: [registry],
    });
    this.#rejected = new Counter({
      name: "pgrag_events_rejected_total",
      help: "Usage events the database refused as invalid, dropped one by one so the rest are written",
      registers: [registry],
    });
    const buffered = () => this.#buffer.length;
    new Gauge({
      name: "pgrag_events_buffered",
      help: "Usage events waiting to be written",
      registers: [registry],
      collect() {
        this.set(buffered());
      },
    });
  }

  record(event: UsageEvent): void {
    if (this.#buffer.length >= this.#options.bufferSize) {
      this.#dropped.inc();
      return;
    }
    this.#buffer.push({ ...event, payload: storablePayload(event.payload), occurredAt: new Date().toISOString() });
  }

  start(): void {
    this.#timer = setInterval(() => void this.flush(), this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    if (this.#buffer.length > 0) await this.flush();
  }

  /** Writes what is buffered; concurrent calls share one flush. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flushAll().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flushAll(): Promise<void> {
    if (this.#buffer.length === 0) return;
    await this.#maintainPartitions();
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.slice(0, MAX_BATCH);
      try {
        await this.#writeIsolatingBadEvents(batch);
      } catch (error) {
        this.#logger.warn(
          { err: error, events: batch.length },
          "writing usage events failed; keeping them for the next flush",
        );
        return;
      }
      this.#buffer = this.#buffer.slice(batch.length);
    }
  }

  /**
   * Writes a batch; if the database refuses it as invalid data, writes each half on its own, down to
   * the single bad event, which is logged, counted and dropped — so one bad event (from any tenant)
   * can never hold back everybody else's. Connection errors propagate: the batch is kept for later.
   */
  async #writeIsolatingBadEvents(batch: readonly BufferedEvent[]): Promise<void> {
    try {
      await this.#router.write({}, (tx) =>
        sql`SELECT analytics.record_events(${JSON.stringify(batch.map(eventRow))}::jsonb)`.execute(tx),
      );
      this.#written.inc(batch.length);
    } catch (error) {
      if (!isInvalidData(error)) throw error;
      const [only] = batch;
      if (batch.length === 1 && only) {
        this.#rejected.inc();
        this.#logger.error(
          { err: error, tenantId: only.tenantId, kind: only.kind, requestId: only.requestId },
          "usage event refused by the database; dropped",
        );
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.#writeIsolatingBadEvents(batch.slice(0, half));
      await this.#writeIsolatingBadEvents(batch.slice(half));
    }
  }

  /** Daily partitions ahead of time, and retention, about once an hour. */
  async #maintainPartitions(): Promise<void> {
    if (Date.now() - this.#lastMaintenance < MAINTENANCE_EVERY_MS) return;
    try {
      await this.#router.write({}, async (tx) => {
        await sql`SELECT analytics.ensure_partitions()`.execute(tx);
        await sql`SELECT analytics.drop_partitions_before(${this.#options.retentionDays}::int)`.execute(tx);
      });
      this.#lastMaintenance = Date.now();
    } catch (error) {
      this.#logger.warn({ err: error }, "analytics partition maintenance failed; retrying at the next flush");
    }
  }
}
