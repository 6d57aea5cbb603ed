import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectFiles } from "../../src/cli/files.ts";

describe("collectFiles", () => {
  it("reads a folder once, follows links only inside it, and skips links out and cycles", async () => {
    const base = mkdtempSync(join(tmpdir(), "pgrag-files-"));
    const folder = join(base, "docs");
    mkdirSync(join(folder, "sub"), { recursive: true });
    mkdirSync(join(base, "private"));
    writeFileSync(join(folder, "a.md"), "# A");
    writeFileSync(join(folder, "sub", "b.txt"), "B");
    writeFileSync(join(folder, "image.png"), "");
    writeFileSync(join(folder, "report.pdf"), "%PDF-1.7");
    writeFileSync(join(base, "private", "secret.md"), "not yours");
    symlinkSync(join(base, "private"), join(folder, "out")); // a folder outside
    symlinkSync(join(base, "private", "secret.md"), join(folder, "secret.md")); // a file outside
    symlinkSync(folder, join(folder, "sub", "loop")); // a cycle
    symlinkSync(join(folder, "sub", "b.txt"), join(folder, "b-again.txt")); // inside: followed

    const { documents, skipped } = await collectFiles([folder]);
    expect(documents.map((d) => d.externalId)).toEqual(["a.md", "b-again.txt", "report.pdf", "sub/b.txt"]);
    expect(documents.map((d) => d.bytes.toString())).toEqual(["# A", "B", "%PDF-1.7", "B"]);
    expect(documents.map((d) => d.contentType)).toEqual([
      "text/markdown",
      "text/plain",
      "application/pdf",
      "text/plain",
    ]);
    expect(skipped).toEqual([
      `${join(folder, "image.png")} (not PDF, Word, PowerPoint, Markdown, text or HTML)`,
      `${join(folder, "out")} (a link out of ${folder})`,
      `${join(folder, "secret.md")} (a link out of ${folder})`,
      `${join(folder, "sub", "loop")} (a link back to a folder already read)`,
    ]);
  });
});
