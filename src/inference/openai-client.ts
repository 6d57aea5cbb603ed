import OpenAI from "openai";
import type { Config } from "../config.ts";

/** Where inference requests go: a URL and its key, and for a backend in this process, the fetch that reaches it. */
export interface InferenceTarget {
  readonly baseURL: string;
  readonly apiKey: string;
  readonly fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
}

/**
 * The openai client both inference clients use: retries connection errors, 408/409/429 and 5xx with
 * exponential backoff and jitter, `maxRetries` times; `timeout` bounds the wait for response headers.
 */
export function createOpenAiClient(target: InferenceTarget, config: Pick<Config, "inference">): OpenAI {
  return new OpenAI({
    baseURL: target.baseURL,
    ...(target.fetch ? { fetch: target.fetch } : {}),
    apiKey: target.apiKey,
    maxRetries: config.inference.maxRetries,
    timeout: config.inference.timeoutMs,
  });
}
