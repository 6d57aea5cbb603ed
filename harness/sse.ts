/** Reads a Server-Sent Events response into (event, data) pairs; `onEvent` may stop early by returning false. */
export async function readSse(
  response: Response,
  onEvent: (event: string, data: string) => boolean | undefined = () => true,
): Promise<{ event: string; data: string }[]> {
  const events: { event: string; data: string }[] = [];
  const reader = response.body?.getReader();
  if (!reader) return events;
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let boundary = buffer.indexOf("\n\n");
    while (boundary >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      boundary = buffer.indexOf("\n\n");
      const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
      const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join("\n");
      events.push({ event, data });
      if (onEvent(event, data) === false) {
        await reader.cancel();
        return events;
      }
    }
  }
  return events;
}
