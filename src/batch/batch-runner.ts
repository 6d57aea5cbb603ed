import type { Kysely } from "kysely";
import { Counter, type Registry } from "prom-client";
import { withChatUsage } from "../analytics/chat-usage.ts";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import { collectAnswer, nextEvent } from "../chat/answer-events.ts";
import type { ChatService } from "../chat/chat.service.ts";
import { chatRequestOf, completionJson, newCompletionMeta, openAiChatBody } from "../chat/openai-chat.ts";
import { AppError, describeIssues, errorCodeOf, httpStatusOf } from "../errors.ts";
import type { Database } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import type { AdmissionControl } from "../inference/admission.ts";
import type { EmbeddingClient } from "../inference/embedding-client.ts";
import type { Tracing } from "../tracing.ts";
import type { Logger } from "../logger.ts";
import type { Principal } from "../tenancy/principal.ts";
import { startLeaseRenewal } from "../jobs/job-leases.ts";
import { PollLoop } from "../jobs/poll-loop.ts";
import { slicesWithinBudget } from "../jobs/slices.ts";
import { estimateTokens } from "../text/token-estimate.ts";
import {
  batchesToFinalize,
  type ClaimedLine,
  claimLines,
  deleteExpiredFiles,
  finalizeBatch,
  type LineResult,
  renewLeases,
  storeLineResult,
} from "./batches.repository.ts";

export interface BatchRunnerOptions {
  /** Lines in flight at once (each then waits for a batch slot of the inference scheduler). */
  readonly concurrency: number;
  /** Attempts per line before a retryable failure (429, 5xx) is final. */
  readonly maxAttempts: number;
  /** A line's lease; a running one is renewed three times per lease. */
  readonly leaseSeconds: number;
  /** Output and error files are deleted this long after a batch ends (PGRAG_FILE_EXPIRE_SECONDS). */
  readonly fileExpireSeconds: number;
  readonly pollMs: number;
  readonly embeddingModel: string;
}

/**
 * Inputs per group of embedding lines: small lines go to the backend together, and a group's vectors
 * (held until its lines are stored) stay this many, or one line's when it has more.
 */
const EMBEDDINGS_PER_REQUEST = 256;

/** Embedding lines in groups of at most EMBEDDINGS_PER_REQUEST inputs (a larger line alone). */
export function byInputs(lines: readonly ClaimedLine[]): ClaimedLine[][] {
  return slicesWithinBudget(
    lines,
    (line) => {
      const inputs = embeddingInputs(line.body);
      // A line refused for its input costs nothing to embed.
      return typeof inputs === "string" ? 0 : inputs.length;
    },
    EMBEDDINGS_PER_REQUEST,
  );
}
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
/** Expired files deleted per poll: a backlog goes in short statements, not one long one. */
const EXPIRED_FILES_PER_TURN = 500;

/**
 * Runs the lines of every tenant's batches: claims runnable lines (tenants in turn) up to its
 * concurrency, answers each — chat as /v1/chat/completions answers, in the batch class of the
 * inference scheduler, embeddings grouped into large requests — and stores each answer only if it
 * still holds the line. Retryable failures go back with exponential backoff. Batches with nothing left
 * to run are finalized with their output and error files.
 */
export class BatchRunner {
  readonly #router: Router;
  readonly #admission: AdmissionControl;
  readonly #embeddings: EmbeddingClient;
  readonly #chat: ChatService;
  readonly #usage: EventRecorder;
  readonly #logger: Logger;
  readonly #options: BatchRunnerOptions;
  readonly #lines: Counter<"outcome">;
  readonly #inFlight = new Map<string, ClaimedLine>();
  /** The answers under way: stop() waits for them. */
  readonly #running = new Set<Promise<void>>();
  readonly #loop: PollLoop<ClaimedLine>;
  #stopRenewal: (() => void) | undefined;
  /** The loop turns once per finished line under load; finished batches are looked for once per poll interval. */
  #finalizedAt = Number.NEGATIVE_INFINITY;

  constructor(
    deps: {
      router: Router;
      admission: AdmissionControl;
      embeddings: EmbeddingClient;
      chat: ChatService;
      usage: EventRecorder;
      logger: Logger;
      registry: Registry;
      tracing?: Tracing;
    },
    options: BatchRunnerOptions,
  ) {
    this.#router = deps.router;
    this.#admission = deps.admission;
    this.#embeddings = deps.embeddings;
    this.#chat = deps.chat;
    this.#usage = deps.usage;
    this.#logger = deps.logger;
    this.#options = options;
    this.#lines = new Counter({
      name: "pgrag_batch_lines_total",
      help: "Batch lines answered, by outcome (succeeded, failed, retried, superseded), and lines preempted (run again)",
      labelNames: ["outcome"],
      registers: [deps.registry],
    });
    // A claim that found lines claims again at once (fullBatch 1); an empty one waits for the poll
    // interval or for a line to finish, whichever comes first.
    this.#loop = new PollLoop<ClaimedLine>({
      name: "batch runner",
      intervalMs: options.pollMs,
      fullBatch: 1,
      logger: this.#logger,
      fetch: () => this.#claim(),
      run: async (claimed) => {
        for (const work of this.#answer(claimed)) {
          const tracked: Promise<void> = work.finally(() => {
            this.#running.delete(tracked);
            this.#loop.wake();
          });
          this.#running.add(tracked);
        }
      },
      idsOf: (lines) => lines.map(key),
      tracing: deps.tracing,
    });
  }

  async start(): Promise<void> {
    this.#stopRenewal = startLeaseRenewal({
      seconds: this.#options.leaseSeconds,
      renew: () => this.#renewLeases(),
      what: "batch line leases",
      logger: this.#logger,
    });
    this.#loop.start();
  }

  /** Stops claiming and waits for the lines in flight (a line cut off runs again after its lease). */
  async stop(): Promise<void> {
    await this.#loop.stop();
    await Promise.all(this.#running);
    this.#stopRenewal?.();
  }

  /** Lines up to the free concurrency, after finalizing finished batches once per poll interval. */
  async #claim(): Promise<ClaimedLine[]> {
    if (performance.now() - this.#finalizedAt >= this.#options.pollMs) {
      this.#finalizedAt = performance.now();
      await this.#finalize();
    }
    const free = this.#options.concurrency - this.#inFlight.size;
    if (free <= 0) return [];
    return (await this.#router.write({}, (tx) => claimLines(tx, free, this.#options.leaseSeconds))).value;
  }

  /** Chat lines each on their own; embedding lines in groups of one tenant. */
  #answer(lines: readonly ClaimedLine[]): Promise<void>[] {
    for (const line of lines) this.#inFlight.set(key(line), line);
    const work: Promise<void>[] = [];
    const embeddings = new Map<string, ClaimedLine[]>();
    for (const line of lines) {
      if (line.endpoint === "/v1/embeddings")
        embeddings.set(line.tenantId, [...(embeddings.get(line.tenantId) ?? []), line]);
      else work.push(this.#settle([line], () => this.#answerChat(line).then((result) => [result])));
    }
    for (const group of embeddings.values()) {
      for (const slice of byInputs(group)) work.push(this.#settle(slice, () => this.#embed(slice)));
    }
    return work;
  }

  /**
   * A chat line stopped for an interactive request runs again at once, still under its lease and at
   * the same attempt: being preempted is the scheduler's doing, not a failure of the line.
   */
  async #answerChat(line: ClaimedLine): Promise<LineResult> {
    const principal: Principal = {
      tenantId: line.tenantId,
      keyId: "batch",
      scopes: ["read", "write"],
      principals: null,
      owner: null,
    };
    const body = openAiChatBody.safeParse(line.body);
    if (!body.success) {
      const { message } = describeIssues(body.error);
      return { outcome: "failed", statusCode: 400, error: { code: "invalid_request", message } };
    }
    for (;;) {
      try {
        const { request, model } = chatRequestOf(body.data, "batch");
        // A batch has no token of earlier writes: any replica may answer, as for a request without one.
        const events = withChatUsage(
          this.#usage,
          { principal, request, requestId: `${line.batchId}-${line.line}` },
          this.#chat.ask(principal, request, null, new AbortController().signal),
        );
        const { end } = await collectAnswer(await nextEvent(events), events);
        return { outcome: "succeeded", statusCode: 200, response: completionJson(newCompletionMeta(model), end) };
      } catch (error) {
        const code = errorCodeOf(error);
        if (code !== "preempted" || this.#loop.stopping) {
          const message = error instanceof AppError ? error.message : "the request failed";
          return this.#failure(line, httpStatusOf(error), { code, message });
        }
        this.#lines.inc({ outcome: "preempted" });
      }
    }
  }

  /** One embeddings request for a group of lines (inputs concatenated, answers split back). */
  async #embed(lines: readonly ClaimedLine[]): Promise<LineResult[]> {
    const inputs = lines.map((line) => embeddingInputs(line.body));
    const texts = inputs.flatMap((input) => (typeof input === "string" ? [] : input));
    const [first] = lines;
    if (!first) return [];
    let vectors: number[][] = [];
    if (texts.length > 0) {
      const release = await this.#admission.acquire(first.tenantId, { priority: "batch" });
      try {
        vectors = await this.#embeddings.embed(texts, { tenantId: first.tenantId, priority: "batch" });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return lines.map((line) => this.#failure(line, 502, { code: "upstream_error", message }));
      } finally {
        release();
      }
    }
    let next = 0;
    return inputs.map((input) => {
      if (typeof input === "string")
        return { outcome: "failed", statusCode: 400, error: { code: "invalid_request", message: input } };
      const data = input.map((_, index) => ({ object: "embedding", index, embedding: vectors[next + index] ?? [] }));
      next += input.length;
      const tokens = input.reduce((n, text) => n + estimateTokens(text), 0);
      return {
        outcome: "succeeded",
        statusCode: 200,
        response: {
          object: "list",
          data,
          model: this.#options.embeddingModel,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        },
      } satisfies LineResult;
    });
  }

  #failure(line: ClaimedLine, status: number, error: { code: string; message: string }): LineResult {
    if (RETRYABLE.has(status) && line.attempt < this.#options.maxAttempts) {
      return { outcome: "retry", afterSeconds: Math.min(60, 2 ** line.attempt) };
    }
    return { outcome: "failed", statusCode: status, error };
  }

  /** Answers lines and stores each result as its tenant; an unexpected error leaves them to their leases. */
  async #settle(lines: readonly ClaimedLine[], answer: () => Promise<LineResult[]>): Promise<void> {
    try {
      const results = await answer();
      for (const [index, line] of lines.entries()) {
        const result = results[index];
        if (!result) continue;
        const stored = await this.#asTenant(line.tenantId, (tx) => storeLineResult(tx, line, result));
        this.#lines.inc({ outcome: !stored ? "superseded" : result.outcome === "retry" ? "retried" : result.outcome });
      }
    } catch (error) {
      this.#logger.warn(
        { err: error, lines: lines.length },
        "batch lines failed to run; they run again after their lease",
      );
    } finally {
      for (const line of lines) this.#inFlight.delete(key(line));
    }
  }

  /** Ends the batches with nothing left to run, and deletes expired files (every tenant's, a bounded number a turn). */
  async #finalize(): Promise<void> {
    const { value: ready } = await this.#router.read({ primary: true }, (db) => batchesToFinalize(db));
    const { fileExpireSeconds } = this.#options;
    for (const { batchId, tenantId } of ready) {
      const status = await this.#asTenant(tenantId, (tx) =>
        finalizeBatch(tx, { batchId, tenantId, fileExpireSeconds }),
      );
      if (status) this.#logger.info({ batchId, status }, "batch finished");
    }
    const { value: deleted } = await this.#router.write({}, (tx) => deleteExpiredFiles(tx, EXPIRED_FILES_PER_TURN));
    if (deleted > 0) this.#logger.info({ files: deleted }, "expired files deleted");
  }

  async #renewLeases(): Promise<void> {
    const byTenant = new Map<string, ClaimedLine[]>();
    for (const line of this.#inFlight.values())
      byTenant.set(line.tenantId, [...(byTenant.get(line.tenantId) ?? []), line]);
    for (const [tenantId, lines] of byTenant) {
      await this.#asTenant(tenantId, (tx) => renewLeases(tx, lines, this.#options.leaseSeconds)).catch(
        (error: unknown) => this.#logger.warn({ err: error }, "renewing batch line leases failed"),
      );
    }
  }

  async #asTenant<T>(tenantId: string, work: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
    return (await this.#router.write({ tenantId }, work)).value;
  }
}

const key = (line: ClaimedLine) => `${line.batchId}/${line.line}`;

/** An embeddings body's inputs, or the reason it has none usable. */
function embeddingInputs(body: unknown): string[] | string {
  const input = (body as { input?: unknown } | null)?.input;
  if (typeof input === "string" && input.length > 0) return [input];
  if (
    Array.isArray(input) &&
    input.length > 0 &&
    input.length <= 2048 &&
    input.every((i) => typeof i === "string" && i.length > 0)
  ) {
    return input as string[];
  }
  return "body.input must be a non-empty string or an array of 1 to 2048 non-empty strings";
}
