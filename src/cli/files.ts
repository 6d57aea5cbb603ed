import { readdir, readFile, stat } from "node:fs/promises";
import { basename, extname, join, relative } from "node:path";
import type { ContentType } from "../ingest/content.ts";

const TYPES: Record<string, ContentType> = {
  ".md": "text/markdown",
  ".markdown": "text/markdown",
  ".txt": "text/plain",
  ".text": "text/plain",
  ".html": "text/html",
  ".htm": "text/html",
};

export interface LocalDocument {
  readonly externalId: string;
  readonly title: string;
  readonly contentType: ContentType;
  readonly bytes: Buffer;
}

/** Markdown, text and HTML files under the given paths (folders recursively); others are listed as skipped. */
export async function collectFiles(paths: readonly string[]): Promise<{ documents: LocalDocument[]; skipped: string[] }> {
  const documents: LocalDocument[] = [];
  const skipped: string[] = [];
  const visit = async (path: string, root: string): Promise<void> => {
    const info = await stat(path);
    if (info.isDirectory()) {
      for (const entry of (await readdir(path)).sort()) await visit(join(path, entry), root);
      return;
    }
    const type = TYPES[extname(path).toLowerCase()];
    if (!type) {
      skipped.push(path);
      return;
    }
    documents.push({ externalId: relative(root, path) || basename(path), title: basename(path), contentType: type, bytes: await readFile(path) });
  };
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new Error(`no such file or folder: ${path}`);
    await visit(path, info.isDirectory() ? path : join(path, ".."));
  }
  return { documents, skipped };
}
