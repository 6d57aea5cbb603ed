import { unzipSync } from "fflate";
import { type ParseLimits, ParseRefusal } from "./parsed-document.ts";

/** Checked from the archive's directory before anything is expanded. An Office file's expansion ratio is rarely above 20, a zip bomb's in the thousands. */
export type ZipLimits = Pick<ParseLimits, "maxZipEntries" | "maxExpandedBytes" | "maxExpansionRatio">;

/** The names of an archive's entries, after checking its directory against the limits. */
export function zipEntryNames(bytes: Uint8Array, limits: ZipLimits): string[] {
  const names: string[] = [];
  let expanded = 0;
  try {
    unzipSync(bytes, {
      filter(file) {
        names.push(file.name);
        expanded += file.originalSize;
        if (names.length > limits.maxZipEntries) {
          throw new ParseRefusal(
            `the archive has more than ${limits.maxZipEntries} entries (PGRAG_PARSE_MAX_ZIP_ENTRIES)`,
          );
        }
        return false;
      },
    });
  } catch (error) {
    if (error instanceof ParseRefusal) throw error;
    throw new ParseRefusal(`the file is not a readable zip archive (${(error as Error).message})`);
  }
  if (expanded > limits.maxExpandedBytes) {
    throw new ParseRefusal(
      `the archive expands to ${expanded} bytes, over the limit of ${limits.maxExpandedBytes} (PGRAG_PARSE_MAX_EXPANDED_BYTES)`,
    );
  }
  const ratio = expanded / Math.max(1, bytes.byteLength);
  if (ratio > limits.maxExpansionRatio) {
    throw new ParseRefusal(
      `the archive expands ${Math.round(ratio)}-fold, over the limit of ${limits.maxExpansionRatio} (a zip bomb?)`,
    );
  }
  return names;
}

/** The entries `wanted` names, expanded (call zipEntryNames first: it checks the limits). */
export function readZipEntries(bytes: Uint8Array, wanted: (name: string) => boolean): Map<string, Uint8Array> {
  try {
    return new Map(Object.entries(unzipSync(bytes, { filter: (file) => wanted(file.name) })));
  } catch (error) {
    throw new ParseRefusal(`the archive's entries cannot be read (${(error as Error).message})`);
  }
}
