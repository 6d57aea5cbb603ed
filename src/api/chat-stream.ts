import type { Context } from "hono";
import type { SSEStreamingApi } from "hono/streaming";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import { withChatUsage } from "../analytics/chat-usage.ts";
import type { ChatRequest, ChatService } from "../chat/chat.service.ts";
import { AppError } from "../errors.ts";
import type { Principal } from "../tenancy/principal.ts";
import { readConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";

/** What the chat routes (/v1/chat and the OpenAI facade) share: the client's signal, answers with their usage event, and the SSE error event. */

/** A signal that fires when the HTTP client goes away, to cancel the upstream request. */
export function clientSignal(c: Context): AbortController {
  const controller = new AbortController();
  c.req.raw.signal.addEventListener("abort", () => controller.abort());
  return controller;
}

export async function writeStreamError(stream: SSEStreamingApi, error: unknown): Promise<void> {
  const appError = error instanceof AppError ? error : new AppError("bad_gateway", "the answer was interrupted");
  await stream.writeSSE({
    event: "error",
    data: JSON.stringify({ error: { code: appError.code, message: appError.message } }),
  });
}

/** Runs an answer whose usage event is recorded when it ends, however it ends. */
export function recordedAnswers(service: ChatService, usage: EventRecorder) {
  return (c: Context<AppEnv>, principal: Principal, request: ChatRequest, abort: AbortController) =>
    withChatUsage(
      usage,
      { principal, request, requestId: c.get("requestId") },
      service.ask(principal, request, readConsistencyToken(c), abort.signal),
    );
}
