import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { z } from "zod";
import { estimateTokens } from "../text/token-estimate.ts";
import { createDevRerankApp, type DevRerankFaults, type DevRerankStats } from "./dev-reranker.ts";
import { EmbeddingThreads } from "./embedding-threads.ts";
import { toBase64Floats } from "./hash-embedding.ts";

/**
 * A small, deterministic OpenAI-compatible inference server: /v1/models, /v1/embeddings,
 * /v1/chat/completions (extractive answers from the supplied context, streamed in the real SSE
 * format) and /v1/rerank (with TEI's /rerank: dev-reranker.ts). It exists because no model weights can be downloaded here; any real OpenAI-compatible
 * backend (vLLM, TGI, Ollama, OpenAI) replaces it through PGRAG_INFERENCE_URL.
 *
 * `faults` lets tests make it misbehave the way real backends do (errors, a wrong dimension, slow
 * tokens); `stats` lets them observe what it was asked; `embeddingRecord` lets a benchmark keep the
 * backend's own work off the machine it measures.
 */
export interface DevInferenceOptions {
  readonly host?: string;
  readonly port?: number;
  readonly dimension: number;
  readonly embeddingModel: string;
  readonly chatModel: string;
}

export interface DevInferenceFaults extends DevRerankFaults {
  /** The next N requests (any endpoint) answer `failStatus`. */
  failNext: number;
  failStatus: number;
  /** Embeddings come back one element short. */
  wrongDimension: boolean;
  /** Delay before answering an embeddings request (a busy GPU). */
  embeddingDelayMs: number;
  /** Delay before the first chat token and between tokens. */
  firstTokenDelayMs: number;
  tokenDelayMs: number;
  /** Chat requests served at once, as a GPU's capacity (0: no limit); the others queue in order. */
  chatConcurrency: number;
}

export interface DevInferenceStats extends DevRerankStats {
  embeddingRequests: number;
  embeddedInputs: number;
  /** How often each input text was embedded, kept only once a test sets a map here: benchmarks embed millions. */
  inputCounts?: Map<string, number>;
  chatRequests: number;
  /** Streams whose client went away before the answer was complete. */
  abortedChats: number;
  /** The messages of the last chat request, to see what a prompt contained. */
  lastChatMessages: { role: string; content?: string | null }[];
  /** Milliseconds chat requests held a slot, summed: its growth over time ÷ chatConcurrency is the busy fraction. */
  chatBusyMs: number;
}

/**
 * Vectors kept by input text: while `recording`, each one computed is kept, and a kept one is answered
 * without computing it again. A GPU host does the embedding work on another machine; a benchmark that
 * records a first pass and replays it measures the platform's own work on these cores, every request
 * to the backend still made (bench:ingest --backend-elsewhere). Full-dimension vectors only: the
 * wrongDimension fault bypasses it.
 */
export interface DevEmbeddingRecord {
  recording: boolean;
  readonly vectors: Map<string, number[]>;
}

export interface DevInferenceServer {
  readonly url: string;
  /** The bearer token it asks of every request. */
  readonly apiKey: string;
  readonly faults: DevInferenceFaults;
  readonly stats: DevInferenceStats;
  readonly embeddingRecord: DevEmbeddingRecord;
  close(): Promise<void>;
}

const embeddingsRequest = z.object({
  model: z.string(),
  input: z.union([z.string(), z.array(z.string())]),
  encoding_format: z.enum(["float", "base64"]).optional(),
});

const chatRequest = z.object({
  model: z.string(),
  messages: z.array(z.object({ role: z.string(), content: z.union([z.string(), z.null()]).optional() })).min(1),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
});

function createDevInferenceApp(
  options: DevInferenceOptions,
  faults: DevInferenceFaults,
  stats: DevInferenceStats,
  record: DevEmbeddingRecord,
  threads: EmbeddingThreads,
): Hono {
  const app = new Hono();
  const openAiError = (message: string, type: string) => ({
    error: { message, type, param: null, code: null },
  });

  app.use(async function injectFaults(c, next) {
    if (faults.failNext > 0) {
      faults.failNext--;
      return c.json(openAiError("injected failure", "server_error"), faults.failStatus as 500);
    }
    await next();
  });
  app.route(
    "/",
    createDevRerankApp(faults, stats, (ms) => sleep(ms)),
  );

  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [options.embeddingModel, options.chatModel].map((id) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "pgrag-dev",
      })),
    }),
  );

  app.post("/v1/embeddings", async (c) => {
    const parsed = embeddingsRequest.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json(openAiError(parsed.error.message, "invalid_request_error"), 400);
    const inputs = typeof parsed.data.input === "string" ? [parsed.data.input] : parsed.data.input;
    stats.embeddingRequests++;
    stats.embeddedInputs += inputs.length;
    for (const text of inputs) stats.inputCounts?.set(text, (stats.inputCounts.get(text) ?? 0) + 1);
    await sleep(faults.embeddingDelayMs);
    const dimension = faults.wrongDimension ? options.dimension - 1 : options.dimension;
    const recorded = (text: string) => (faults.wrongDimension ? undefined : record.vectors.get(text));
    const toCompute = [...new Set(inputs.filter((text) => !recorded(text)))];
    const computed = await threads.embed(toCompute, dimension);
    const computedAt = new Map(toCompute.map((text, index) => [text, index]));
    const data = inputs.map((text, index) => {
      const at = computedAt.get(text);
      const vector =
        at === undefined
          ? new Float32Array(recorded(text) ?? [])
          : computed.subarray(at * dimension, (at + 1) * dimension);
      if (record.recording && !faults.wrongDimension && at !== undefined) record.vectors.set(text, Array.from(vector));
      return {
        object: "embedding",
        index,
        embedding: parsed.data.encoding_format === "base64" ? toBase64Floats(vector) : Array.from(vector),
      };
    });
    const tokens = inputs.reduce((sum, text) => sum + estimateTokens(text), 0);
    return c.json({
      object: "list",
      data,
      model: parsed.data.model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  });

  // The chat slots (faults.chatConcurrency): waiters in arrival order. Like vLLM, a request whose
  // client went away stops at once, waiting or running, and frees its slot.
  let chatsRunning = 0;
  const slotWaiters: (() => void)[] = [];
  const takeSlot = async (gone: AbortSignal): Promise<(() => void) | undefined> => {
    if (faults.chatConcurrency > 0 && chatsRunning >= faults.chatConcurrency) {
      const admitted = await new Promise<boolean>((resolve) => {
        const leave = () => {
          slotWaiters.splice(slotWaiters.indexOf(admit), 1);
          resolve(false);
        };
        const admit = () => {
          gone.removeEventListener("abort", leave);
          resolve(true);
        };
        if (gone.aborted) return resolve(false);
        slotWaiters.push(admit);
        gone.addEventListener("abort", leave, { once: true });
      });
      if (!admitted) return undefined;
    } else {
      chatsRunning++;
    }
    const started = performance.now();
    return () => {
      stats.chatBusyMs += performance.now() - started;
      const next = slotWaiters.shift();
      if (next) next();
      else chatsRunning--;
    };
  };
  app.post("/v1/chat/completions", async (c) => {
    const parsed = chatRequest.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json(openAiError(parsed.error.message, "invalid_request_error"), 400);
    stats.chatRequests++;
    const request = parsed.data;
    stats.lastChatMessages = request.messages;
    const prompt = request.messages.map((m) => m.content ?? "").join("\n");
    const { text: answer, finish } = withinLimits(
      extractiveAnswer(request.messages, request.max_tokens ?? 256),
      request.max_tokens ?? null,
      typeof request.stop === "string" ? [request.stop] : (request.stop ?? []),
    );
    const usage = {
      prompt_tokens: estimateTokens(prompt),
      completion_tokens: estimateTokens(answer),
      total_tokens: estimateTokens(prompt) + estimateTokens(answer),
    };
    const id = `chatcmpl-dev-${stats.chatRequests}`;
    const created = Math.floor(Date.now() / 1000);
    // A request holds its slot from its first token's wait to its last chunk.
    const gone = new AbortController();
    c.req.raw.signal.addEventListener("abort", () => gone.abort(), { once: true });
    const release = await takeSlot(gone.signal);
    if (!release) {
      stats.abortedChats++;
      return new Response(null, { status: 499 }); // nginx's "client closed request": nobody reads it
    }
    if (!request.stream) {
      await sleep(faults.firstTokenDelayMs, gone.signal);
      release();
      return c.json({
        id,
        object: "chat.completion",
        created,
        model: request.model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: answer },
            finish_reason: finish,
            logprobs: null,
          },
        ],
        usage,
      });
    }
    return streamSSE(c, async (stream) => {
      try {
        await streamAnswer(stream);
      } finally {
        release();
      }
    });
    async function streamAnswer(stream: SSEStreamingApi): Promise<void> {
      stream.onAbort(() => gone.abort());
      const chunk = (delta: object, finish: string | null, extra: object = {}) =>
        JSON.stringify({
          id,
          object: "chat.completion.chunk",
          created,
          model: request.model,
          choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
          ...extra,
        });
      await sleep(faults.firstTokenDelayMs, gone.signal);
      if (!gone.signal.aborted) await stream.writeSSE({ data: chunk({ role: "assistant", content: "" }, null) });
      for (const piece of answer.match(/\S+\s*/g) ?? []) {
        if (gone.signal.aborted) break;
        await stream.writeSSE({ data: chunk({ content: piece }, null) });
        await sleep(faults.tokenDelayMs, gone.signal);
      }
      if (gone.signal.aborted) {
        stats.abortedChats++;
        return;
      }
      await stream.writeSSE({ data: chunk({}, finish) });
      if (request.stream_options?.include_usage) {
        await stream.writeSSE({
          data: JSON.stringify({
            id,
            object: "chat.completion.chunk",
            created,
            model: request.model,
            choices: [],
            usage,
          }),
        });
      }
      await stream.writeSSE({ data: "[DONE]" });
    }
  });
  return app;
}

/**
 * Picks the context's prose sentences sharing most words with the question (for their length: a
 * long sentence shares more words by chance), keeping the "[n]" source marker of the passage they
 * come from, so that citations survive into the answer. Code, tables, diagrams and configuration
 * listings are not sentences a person would quote, and are passed over.
 */
export function extractiveAnswer(
  messages: readonly { role: string; content?: string | null }[],
  maxTokens: number,
): string {
  const question = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
  const context = messages
    .filter((m) => m.role === "system")
    .map((m) => m.content ?? "")
    .join("\n");
  const questionWords = new Set(words(question).filter((w) => w.length > 2));
  const candidates: { text: string; score: number; order: number }[] = [];
  let marker = "";
  let order = 0;
  // Context passages come as a "[n] title" line followed by the passage text.
  for (const line of context.split("\n")) {
    const source = /^\[(\d+)\]/.exec(line.trim());
    if (source) {
      marker = `[${source[1]}]`;
      continue;
    }
    if (!marker) continue;
    for (const sentence of line.split(/(?<=[.!?])\s+/)) {
      if (!isProse(sentence)) continue;
      const sentenceWords = words(sentence);
      const overlap = sentenceWords.filter((w) => questionWords.has(w)).length;
      if (overlap > 0)
        candidates.push({
          text: `${sentence.trim()} ${marker}`,
          score: overlap / Math.sqrt(sentenceWords.length),
          order: order++,
        });
    }
  }
  if (candidates.length === 0) return "I could not find an answer to that in the provided context.";
  // Overlapping chunks repeat sentences: each is quoted once, under its first source.
  const seen = new Set<string>();
  const best = candidates
    .sort((a, b) => b.score - a.score || a.order - b.order)
    .filter((c) => {
      const sentence = c.text.replace(/ \[\d+\]$/, "");
      return !seen.has(sentence) && seen.add(sentence);
    })
    .slice(0, 3);
  let answer = "";
  for (const candidate of best.sort((a, b) => a.order - b.order)) {
    if (answer && estimateTokens(answer + candidate.text) > maxTokens) break;
    answer += `${answer ? " " : ""}${candidate.text}`;
  }
  return answer;
}

/**
 * An answer as a backend sends it under max_tokens and stop: cut before the first stop sequence
 * (finish "stop"), or after max_tokens tokens (finish "length").
 */
export function withinLimits(
  answer: string,
  maxTokens: number | null,
  stop: readonly string[],
): { text: string; finish: "stop" | "length" } {
  const stopAt = Math.min(...stop.map((s) => answer.indexOf(s)).filter((i) => i >= 0), answer.length);
  const text = answer.slice(0, stopAt);
  if (maxTokens === null || estimateTokens(text) <= maxTokens) return { text, finish: "stop" };
  let kept = "";
  for (const piece of text.match(/\S+\s*/g) ?? []) {
    if (estimateTokens(kept + piece) > maxTokens) break;
    kept += piece;
  }
  return { text: kept.trimEnd(), finish: "length" };
}

/** Longest sentence the dev answerer quotes: longer runs are listings or flattened blocks, not prose. */
const MAX_SENTENCE_CHARS = 400;

/** Whether a sentence reads as prose: mostly letters, and none of the marks of code, tables or listings. */
export function isProse(sentence: string): boolean {
  const text = sentence.trim();
  // A heading (the chunk's first line, flattened into its text) names the passage; it answers nothing.
  if (text.length < 20 || text.length > MAX_SENTENCE_CHARS || text.startsWith("#")) return false;
  const marks = ["```", "-->", "{", "}", "$ ", "curl ", "://"];
  if (marks.some((mark) => text.includes(mark))) return false;
  // A table row has cells between bars; a configuration listing, NAME=value pairs.
  if (text.split("|").length > 2 || /\w=\S/.test(text)) return false;
  const letters = text.match(/\p{L}/gu)?.length ?? 0;
  return letters / text.length > 0.6;
}

function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Waits `ms`, or less if `cancelled` fires first. */
function sleep(ms: number, cancelled?: AbortSignal): Promise<void> {
  if (ms <= 0 || cancelled?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      cancelled?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    cancelled?.addEventListener("abort", done, { once: true });
  });
}

/** The dev backend without a port: its HTTP app, and the faults, stats and record it shares with any listener. */
export interface DevInference {
  readonly app: Hono;
  readonly faults: DevInferenceFaults;
  readonly stats: DevInferenceStats;
  readonly embeddingRecord: DevEmbeddingRecord;
  /** Stops its embedding thread. */
  close(): Promise<void>;
}

export function createDevInference(options: DevInferenceOptions): DevInference {
  const faults: DevInferenceFaults = {
    failNext: 0,
    failStatus: 500,
    wrongDimension: false,
    embeddingDelayMs: 0,
    firstTokenDelayMs: 0,
    tokenDelayMs: 0,
    chatConcurrency: 0,
    rerankDelayMs: 0,
    malformedRerank: false,
    rerankFailStatus: 0,
  };
  const stats: DevInferenceStats = {
    embeddingRequests: 0,
    embeddedInputs: 0,
    chatRequests: 0,
    abortedChats: 0,
    lastChatMessages: [],
    chatBusyMs: 0,
    rerankRequests: 0,
    rerankedDocuments: 0,
    rerankServiceMs: 0,
  };
  const embeddingRecord: DevEmbeddingRecord = { recording: false, vectors: new Map() };
  const threads = new EmbeddingThreads();
  return {
    app: createDevInferenceApp(options, faults, stats, embeddingRecord, threads),
    faults,
    stats,
    embeddingRecord,
    close: () => threads.close(),
  };
}

/**
 * A fetch that reaches the dev backend in this process, with no socket. A client's abort cancels the
 * streamed response as a closed connection would, so the backend sees it (stream.onAbort).
 */
export function inProcessFetch(inference: DevInference) {
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const response = await inference.app.fetch(new Request(input, init));
    const signal = init?.signal;
    if (!response.body || !signal) return response;
    const body = response.body.pipeThrough(new TransformStream(), { signal });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/**
 * The dev backend on a port of its own, answering only requests that carry `apiKey` as their bearer
 * token: any local user can reach a TCP port. `inference`, when the same backend is also used
 * in-process, stays open when the server closes (its owner closes it).
 */
export async function startDevInferenceServer(
  options: DevInferenceOptions & { readonly apiKey: string },
  inference?: DevInference,
): Promise<DevInferenceServer> {
  const backend = inference ?? createDevInference(options);
  const host = options.host ?? "127.0.0.1";
  const expected = Buffer.from(`Bearer ${options.apiKey}`);
  const authorized = (request: Request) => {
    const given = Buffer.from(request.headers.get("authorization") ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  // Browsers may call it too (the console's "generate on this device" stands in a local engine with
  // it): CORS as local engines offer it, the key still required on every request but the preflight.
  const cors = { "Access-Control-Allow-Origin": "*" };
  const fetch = async (request: Request) => {
    if (request.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
          "Access-Control-Allow-Headers": "authorization, content-type",
        },
      });
    }
    const response = await answer(request);
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(cors)) headers.set(name, value);
    return new Response(response.body, { status: response.status, headers });
  };
  const answer = (request: Request) =>
    authorized(request)
      ? backend.app.fetch(request)
      : Response.json(
          {
            error: {
              message: "a wrong or missing API key",
              type: "invalid_request_error",
              param: null,
              code: "invalid_api_key",
            },
          },
          { status: 401 },
        );
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch, hostname: host, port: options.port ?? 0 }, () => resolve(s));
    s.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/v1`,
    apiKey: options.apiKey,
    faults: backend.faults,
    stats: backend.stats,
    embeddingRecord: backend.embeddingRecord,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      if (!inference) await backend.close();
    },
  };
}
