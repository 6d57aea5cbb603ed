import { type ChunkingOptions, chunkText } from "./chunking.ts";
import { htmlToMarkdown } from "./html-to-markdown.ts";

/** CPU-bound text work on untrusted input, run in the text pool's threads, never on the event loop. */
export type TextTask =
  | { readonly kind: "html-to-markdown"; readonly html: string }
  | { readonly kind: "chunk"; readonly text: string; readonly options: ChunkingOptions };

export function runTask(task: TextTask): unknown {
  return task.kind === "html-to-markdown" ? htmlToMarkdown(task.html) : chunkText(task.text, task.options);
}
