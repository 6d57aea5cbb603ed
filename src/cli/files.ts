import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, extname, join, relative, sep } from "node:path";
import { FILE_FORMATS, formatOfExtension } from "../parsing/formats.ts";
import { textTypeOfExtension } from "../text/content.ts";

export interface LocalDocument {
  readonly externalId: string;
  readonly fileName: string;
  readonly contentType: string;
  readonly bytes: Buffer;
}

/** The type a file's extension names: a file format (PDF, Word, PowerPoint) or a text type. */
function typeOfExtension(extension: string): string | undefined {
  const format = formatOfExtension(extension);
  return format ? FILE_FORMATS[format].contentType : textTypeOfExtension(extension);
}

/**
 * PDF, Word, PowerPoint, Markdown, text and HTML files under the given paths (folders recursively); others are listed as
 * skipped, each with the reason. Inside a folder, a symbolic link is followed only when it stays inside that folder, and
 * each folder is read once: a link out of the folder or a link cycle is skipped, not followed.
 */
export async function collectFiles(
  paths: readonly string[],
): Promise<{ documents: LocalDocument[]; skipped: string[] }> {
  const documents: LocalDocument[] = [];
  const skipped: string[] = [];
  const visit = async (path: string, root: string, rootReal: string, seen: Set<string>): Promise<void> => {
    const real = await realpath(path);
    if (real !== rootReal && !real.startsWith(`${rootReal}${sep}`)) {
      skipped.push(`${path} (a link out of ${root})`);
      return;
    }
    const info = await stat(real);
    if (info.isDirectory()) {
      if (seen.has(real)) {
        skipped.push(`${path} (a link back to a folder already read)`);
        return;
      }
      seen.add(real);
      for (const entry of (await readdir(path)).sort()) await visit(join(path, entry), root, rootReal, seen);
      return;
    }
    const type = typeOfExtension(extname(path).toLowerCase());
    if (!info.isFile() || !type) {
      skipped.push(`${path} (not PDF, Word, PowerPoint, Markdown, text or HTML)`);
      return;
    }
    documents.push({
      externalId: relative(root, path) || basename(path),
      fileName: basename(path),
      contentType: type,
      bytes: await readFile(real),
    });
  };
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new Error(`no such file or folder: ${path}`);
    const root = info.isDirectory() ? path : dirname(path);
    await visit(path, root, await realpath(root), new Set());
  }
  return { documents, skipped };
}
