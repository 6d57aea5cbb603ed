/** A document in one of these states stays so until it is written again or reparsed: waits for it end there. */
export function isSettled(status: string): boolean {
  return status === "ready" || status === "failed" || status === "needs_ocr";
}
