import { readFileSync } from "node:fs";

/** Vectors in the texmex fvecs/ivecs format (SIFT): each row a little-endian int32 length, then its values. */
export function readVectors(path: string, type: "f" | "i"): number[][] {
  const buffer = readFileSync(path);
  const rows: number[][] = [];
  for (let offset = 0; offset < buffer.length;) {
    const dim = buffer.readInt32LE(offset);
    offset += 4;
    const row: number[] = [];
    for (let i = 0; i < dim; i++, offset += 4)
      row.push(type === "f" ? buffer.readFloatLE(offset) : buffer.readInt32LE(offset));
    rows.push(row);
  }
  return rows;
}
