import { execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { TEST_ENV_FILE } from "../../helpers/cluster.ts";
import { readScifactCorpus } from "../../helpers/shared-data.ts";

const run = promisify(execFile);
const CLI = fileURLToPath(new URL("../../../bin/pgrag.js", import.meta.url));
const env = { ...process.env, PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "error" };
const pgrag = (...args: string[]) => run(process.execPath, [CLI, ...args], { env, timeout: 120_000 });
const tenant = `cli-${crypto.randomUUID()}`;

describe("the pgrag CLI", () => {
  it("ingests a folder of Markdown, text and HTML, then answers a question with citations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgrag-cli-"));
    mkdirSync(join(dir, "sub"));
    const [a, b, c] = await readScifactCorpus(3);
    writeFileSync(join(dir, "a.md"), `# ${a?.title}\n\n${a?.text}`);
    writeFileSync(join(dir, "b.txt"), `${b?.title}\n\n${b?.text}`);
    writeFileSync(join(dir, "sub", "c.html"), `<h1>${c?.title}</h1><p>${c?.text}</p>`);
    writeFileSync(join(dir, "image.png"), "not text");
    const ingested = await pgrag("ingest", dir, "--tenant", tenant, "--collection", "notes");
    expect(ingested.stdout).toContain(`3 documents ready in collection "notes" of tenant "${tenant}"`);
    expect(ingested.stderr).toContain("skipped (not Markdown, text or HTML)");

    const asked = await pgrag("ask", a?.title ?? "", "--tenant", tenant, "--collection", "notes");
    expect(asked.stdout).toMatch(/\[1\] .+ — a\.md, characters \d+–\d+/);
    expect(asked.stdout).toContain("extractive answer");
  });

  it("fails with a clear message and a non-zero exit, and has --help", async () => {
    await expect(pgrag("ask", "anything", "--tenant", tenant, "--collection", "missing")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no collection "missing"'),
    });
    await expect(pgrag("ingest", "/nonexistent/folder")).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("no such file or folder") });
    await expect(pgrag("frobnicate")).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "frobnicate"') });
    const help = await pgrag("ask", "--help");
    expect(help.stdout).toContain("ask \"<question>\"");
  });
});
