import { createReadStream, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** `../shared/` beside the repository: evaluation data written by others (see its README). */
export const SHARED_DIR = fileURLToPath(new URL("../../../shared", import.meta.url));
export const SCIFACT_DIR = `${SHARED_DIR}/eval/scifact`;

export interface CorpusDocument {
  _id: string;
  title: string;
  text: string;
}

/** The first `limit` SciFact abstracts. */
export async function readScifactCorpus(limit: number): Promise<CorpusDocument[]> {
  const path = `${SCIFACT_DIR}/corpus.jsonl`;
  if (!existsSync(path))
    throw new Error(`SciFact corpus not found at ${path}: ../shared must sit beside the repository`);
  const docs: CorpusDocument[] = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (docs.length >= limit) break;
    if (line.trim()) docs.push(JSON.parse(line) as CorpusDocument);
  }
  lines.close();
  return docs;
}
