import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The data vendored in the repository (`data/`, with sources and licences): nothing outside it is read. */
export const DATA_DIR = fileURLToPath(new URL("../../data", import.meta.url));
export const SCIFACT_DIR = `${DATA_DIR}/scifact`;
export const SIFT5K_DIR = `${DATA_DIR}/sift5k`;
export const DOCUMENTS_DIR = `${DATA_DIR}/documents`;

export interface CorpusDocument {
  _id: string;
  title: string;
  text: string;
}

/** The non-empty lines of a JSONL file, parsed one at a time. */
export async function* jsonLines<T>(path: string): AsyncGenerator<T> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) if (line.trim()) yield JSON.parse(line) as T;
}

/** The first `limit` SciFact abstracts. */
export async function readScifactCorpus(limit: number): Promise<CorpusDocument[]> {
  const docs: CorpusDocument[] = [];
  if (limit <= 0) return docs;
  for await (const doc of jsonLines<CorpusDocument>(`${SCIFACT_DIR}/corpus.jsonl`)) {
    docs.push(doc);
    if (docs.length >= limit) break;
  }
  return docs;
}
