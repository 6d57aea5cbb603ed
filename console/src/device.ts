import { serverSentEvents } from "./sse.ts";

/**
 * Generating on the user's own device: the platform retrieves and builds the prompt, an
 * OpenAI-compatible engine on this machine (Ollama, llama.cpp's server, LM Studio…) writes the
 * answer, streamed into the page. Its settings stay in this browser; nothing of the platform's
 * credentials is sent to it (only its own key, if it wants one).
 */
export interface DeviceSettings {
  enabled: boolean;
  /** The engine's OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (Ollama). */
  url: string;
  model: string;
  key: string;
}

const STORAGE = "pgrag.device";

export function loadDeviceSettings(): DeviceSettings {
  const saved = JSON.parse(localStorage.getItem(STORAGE) ?? "null") as Partial<DeviceSettings> | null;
  return { enabled: false, url: "http://127.0.0.1:11434/v1", model: "llama3.2", key: "", ...saved };
}

export function saveDeviceSettings(settings: DeviceSettings): void {
  localStorage.setItem(STORAGE, JSON.stringify(settings));
}

/** Streams the engine's answer to `messages`, calling `onText` with each piece. */
export async function generateOnDevice(
  settings: DeviceSettings,
  request: { messages: { role: string; content: string }[]; maxTokens: number },
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await fetch(`${settings.url.replace(/\/+$/, "")}/chat/completions`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(settings.key ? { Authorization: `Bearer ${settings.key}` } : {}),
    },
    body: JSON.stringify({
      model: settings.model,
      messages: request.messages,
      max_tokens: request.maxTokens,
      stream: true,
    }),
    signal,
  });
  if (!response.ok || !response.body) {
    throw new Error(
      `the engine at ${settings.url} answered ${response.status}: ${(await response.text()).slice(0, 200)}`,
    );
  }
  for await (const { data } of serverSentEvents(response.body)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
    const text = chunk.choices?.[0]?.delta?.content;
    if (text) onText(text);
  }
}
