import OpenAI from "openai";
import type { Config } from "../config.ts";

/**
 * The openai client both inference clients use: retries connection errors, 408/409/429 and 5xx with
 * exponential backoff and jitter, `maxRetries` times; `timeout` bounds the wait for response headers.
 */
export function createOpenAiClient(baseURL: string, config: Pick<Config, "inference">): OpenAI {
  return new OpenAI({
    baseURL,
    apiKey: config.inference.apiKey,
    maxRetries: config.inference.maxRetries,
    timeout: config.inference.timeoutMs,
  });
}
