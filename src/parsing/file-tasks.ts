import type { FileFormat } from "./formats.ts";
import { identifyFile, parseFile } from "./parse-file.ts";
import type { ParseLimits } from "./parsed-document.ts";

/** Work on uploaded files, run in the text pool's parser threads (each with a heap cap). */
export type FileTask =
  | { readonly kind: "identify-file"; readonly bytes: Uint8Array; readonly limits: ParseLimits }
  | {
      readonly kind: "parse-file";
      readonly bytes: Uint8Array;
      readonly format: FileFormat;
      readonly limits: ParseLimits;
    };

export function runTask(task: FileTask): unknown {
  return task.kind === "identify-file"
    ? identifyFile(task.bytes, task.limits)
    : parseFile(task.bytes, task.format, task.limits);
}
