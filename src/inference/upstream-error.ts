import OpenAI from "openai";
import { AppError } from "../errors.ts";

/** Maps the openai client's failures to our vocabulary: 504 for time-outs, 502 otherwise. */
export function upstreamError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof OpenAI.APIUserAbortError)
    return new AppError("timeout", "the request was cancelled", { cause: error });
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new AppError("timeout", "the inference backend did not answer in time", { cause: error });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return new AppError("bad_gateway", "the inference backend is unreachable", { cause: error });
  }
  if (error instanceof OpenAI.APIError) {
    return new AppError("bad_gateway", `the inference backend failed: ${error.status ?? ""} ${error.message}`.trim(), {
      cause: error,
    });
  }
  return new AppError("bad_gateway", `the inference backend failed: ${(error as Error).message}`, {
    cause: error,
  });
}
