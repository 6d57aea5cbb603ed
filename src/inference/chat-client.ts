import type { Span } from "@opentelemetry/api";
import OpenAI from "openai";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { failed, TRACING_OFF, type Tracing } from "../tracing.ts";
import type { AdmissionControl, Priority } from "./admission.ts";
import type { InferenceHistogram } from "./inference-metrics.ts";
import { createOpenAiClient, type InferenceTarget } from "./openai-client.ts";
import { upstreamError } from "./upstream-error.ts";

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

export interface ChatUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** How the backend samples an answer, as the OpenAI API names it; absent: the backend's defaults. */
export interface Sampling {
  readonly temperature?: number;
  readonly topP?: number;
  readonly stop?: readonly string[];
  readonly seed?: number;
}

/** Why the backend stopped: the answer was complete ("stop"), or it reached max_tokens ("length"). */
export type FinishReason = "stop" | "length" | "content_filter";

export type ChatDelta =
  { type: "token"; text: string } | { type: "usage"; usage: ChatUsage } | { type: "finish"; reason: FinishReason };

/**
 * Streams chat completions from any OpenAI-compatible backend (vLLM, TGI, Ollama, OpenAI). The
 * openai client retries connection errors, 408/409/429 and 5xx with backoff before the first byte;
 * the admission control bounds how many requests run at once; aborting `signal` (the HTTP client
 * went away) cancels the upstream request.
 */
interface ChatStreamOptions {
  readonly maxTokens: number;
  readonly sampling?: Sampling | undefined;
  readonly signal: AbortSignal;
  /** whose turn it is in admission, and in which class */
  readonly tenantId: string;
  readonly priority?: Priority | undefined;
}

export class ChatClient {
  readonly #client: OpenAI;
  readonly #model: string;
  readonly #admission: AdmissionControl;
  readonly #timeoutMs: number;

  readonly #seconds: InferenceHistogram | undefined;
  readonly #tracing: Tracing;

  constructor(
    target: InferenceTarget,
    config: Pick<Config, "inference">,
    admission: AdmissionControl,
    seconds?: InferenceHistogram,
    tracing: Tracing = TRACING_OFF,
  ) {
    this.#seconds = seconds;
    this.#tracing = tracing;
    this.#client = createOpenAiClient(target, config);
    this.#model = config.inference.chatModel;
    this.#admission = admission;
    this.#timeoutMs = config.inference.timeoutMs;
  }

  get model(): string {
    return this.#model;
  }

  /** The answer as it streams, in a span from the wait for a slot to the last chunk. */
  async *stream(messages: readonly ChatMessage[], options: ChatStreamOptions): AsyncGenerator<ChatDelta> {
    const span = this.#tracing.start(`chat ${this.#model}`, {
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": this.#model,
      "gen_ai.request.max_tokens": options.maxTokens,
      "pgrag.inference.priority": options.priority ?? "interactive",
    });
    try {
      for await (const delta of this.#stream(messages, options, span)) {
        if (delta.type === "usage") {
          span.setAttributes({
            "gen_ai.usage.input_tokens": delta.usage.promptTokens,
            "gen_ai.usage.output_tokens": delta.usage.completionTokens,
          });
        }
        if (delta.type === "finish") span.setAttribute("gen_ai.response.finish_reasons", [delta.reason]);
        yield delta;
      }
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  async *#stream(messages: readonly ChatMessage[], options: ChatStreamOptions, span: Span): AsyncGenerator<ChatDelta> {
    const upstream = new AbortController();
    let preempted = false;
    const release = await this.#admission.acquire(options.tenantId, {
      signal: options.signal,
      priority: options.priority,
      preempt: () => {
        preempted = true;
        upstream.abort();
      },
    });
    span.addEvent("admitted");
    // The openai client's timeout covers the wait for response headers only; a streaming backend
    // sends those at once. This one bounds the wait for each chunk, the first token included.
    const cancel = () => upstream.abort();
    options.signal.addEventListener("abort", cancel);
    let idle: NodeJS.Timeout | undefined;
    let timedOut = false;
    const armIdleTimer = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        timedOut = true;
        upstream.abort();
      }, this.#timeoutMs);
    };
    const endTotal = this.#seconds?.startTimer({ call: "chat_total" });
    const endFirst = this.#seconds?.startTimer({ call: "chat_first_token" });
    let first = true;
    try {
      armIdleTimer();
      const stream = await this.#client.chat.completions.create(
        {
          model: this.#model,
          messages: [...messages],
          stream: true,
          stream_options: { include_usage: true },
          max_tokens: options.maxTokens,
          ...samplingFields(options.sampling),
        },
        { signal: upstream.signal, headers: this.#tracing.outgoing(span) },
      );
      for await (const chunk of stream) {
        armIdleTimer();
        const text = chunk.choices[0]?.delta?.content;
        if (text && first) {
          first = false;
          endFirst?.();
        }
        if (text) yield { type: "token", text };
        const reason = chunk.choices[0]?.finish_reason;
        if (reason === "length" || reason === "content_filter" || reason === "stop") yield { type: "finish", reason };
        if (chunk.usage) {
          yield {
            type: "usage",
            usage: {
              promptTokens: chunk.usage.prompt_tokens,
              completionTokens: chunk.usage.completion_tokens,
            },
          };
        }
      }
      if (upstream.signal.aborted) throw new OpenAI.APIUserAbortError();
      endTotal?.();
    } catch (error) {
      if (preempted)
        throw new AppError("preempted", "an interactive request took this batch request's inference slot", {
          cause: error,
          retryAfterSeconds: 0,
        });
      if (timedOut)
        throw new AppError("timeout", `the inference backend sent nothing for ${this.#timeoutMs} ms`, {
          cause: error,
        });
      if (options.signal.aborted)
        throw new AppError("timeout", "the client went away; the answer was cancelled", { cause: error });
      throw upstreamError(error);
    } finally {
      clearTimeout(idle);
      options.signal.removeEventListener("abort", cancel);
      release();
    }
  }
}

/** The request fields of `sampling` that are set (an absent one is the backend's default). */
function samplingFields(sampling: Sampling | undefined) {
  if (!sampling) return {};
  return {
    ...(sampling.temperature === undefined ? {} : { temperature: sampling.temperature }),
    ...(sampling.topP === undefined ? {} : { top_p: sampling.topP }),
    ...(sampling.stop === undefined ? {} : { stop: [...sampling.stop] }),
    ...(sampling.seed === undefined ? {} : { seed: sampling.seed }),
  };
}
