import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { launchBrowser } from "../../helpers/browser.ts";

/**
 * The README's quick start, as a newcomer runs it: `npm start`, then the README's own commands
 * (read from the README, not copied here), with the key `npm start` printed. Only what a reader
 * would change is changed: the key, and the port (the test asks for a free one).
 */
const run = promisify(execFile);
const readme = readFileSync("README.md", "utf8");
const dataDir = join(mkdtempSync(join(tmpdir(), "pgrag-quick-start-")), "data");
const env = {
  ...process.env,
  PGRAG_EMBEDDED_DATA_DIR: dataDir,
  PGRAG_EMBEDDED_PORT: "55996",
  PGRAG_PORT: "0",
  PGRAG_LOG_LEVEL: "warn",
};

/** The README's shell block that follows `after`. */
function shellBlockAfter(after: string): string {
  const start = readme.indexOf(after);
  expect(start, `the README says "${after}"`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block?.[1]) throw new Error(`no shell block after "${after}"`);
  return block[1];
}

let server: ChildProcess | undefined;
async function stopServer(): Promise<void> {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server?.once("exit", resolve));
  process.kill(-(server.pid ?? 0), "SIGTERM");
  await exited;
}

describe("the README's quick start", () => {
  it("serves with npm start; the README's curl commands create, add, search and answer; the console shows it", async () => {
    const [start] = shellBlockAfter("## Quick start").split("\n");
    expect(start).toMatch(/^npm start\s/);
    // Its own process group, so that stopping it stops npm, the script and node together.
    server = spawn("npm", ["start"], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    onTestFinished(stopServer);
    let output = "";
    server.stdout?.on("data", (chunk: Buffer) => void (output += chunk.toString()));
    server.stderr?.on("data", (chunk: Buffer) => void (output += chunk.toString()));
    const printed = await waitFor(
      "npm start to print its URL and key",
      async () => {
        if (server?.exitCode !== null) throw new Error(`npm start exited: ${output}`);
        const url = /console: {3}(http:\/\/[\d.]+:\d+)\//.exec(output)?.[1];
        const key = /API key: +(pgr_\S+)/.exec(output)?.[1];
        return url && key ? { url, key } : undefined;
      },
      120_000,
    );
    const port = new URL(printed.url).port;

    const commands = shellBlockAfter("Then create a collection")
      .replace(/^KEY=pgr_\S*/m, `KEY=${printed.key}`)
      .replaceAll("localhost:8080", `localhost:${port}`);
    expect(commands).toContain(`KEY=${printed.key}`);
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", commands], { env, maxBuffer: 16 << 20 });

    // One JSON answer a command (curl adds no newline), then the chat's event stream.
    const { values, rest } = leadingJsonValues(stdout, 3);
    const [collection, document, search] = values;
    expect(collection).toMatchObject({ collection: { name: "docs" } });
    expect(document).toMatchObject({ document: { external_id: "readme", status: "ready" } });
    const results = (search as { results: { external_id: string }[] }).results;
    expect(results.length).toBeGreaterThan(0);
    expect(results[0]?.external_id).toBe("readme");
    const events = rest
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => JSON.parse(line.slice(5)) as object);
    const answer = events
      .map((e: { text?: string }) => e.text ?? "")
      .join("")
      .trim();
    // The answer quotes the README's prose (not a code block) and cites it.
    expect(answer).toMatch(/\[\d+\]$/);
    const sentence = answer.replace(/\s*\[\d+\]/g, "").split(/(?<=[.!?])\s+/)[0] ?? "";
    expect(readme.replace(/\s+/g, " ")).toContain(sentence.slice(0, 60));
    expect(answer).not.toMatch(/curl |```/);
    const citations = events.find((e): e is { external_id: string }[] => Array.isArray(e)) ?? [];
    expect(citations.map((c) => c.external_id)).toContain("readme");

    // The console it printed: on this machine it offers the embedded key; the README is there, ready.
    const browser = await launchBrowser();
    const page = await browser.newPage();
    await page.goto(`${printed.url}/`);
    await page.getByRole("button", { name: "Use this machine's key (embedded mode)" }).click();
    await page.getByRole("link", { name: "docs" }).click();
    const readmeRow = page.getByRole("row").filter({ hasText: "readme" });
    await expect.poll(() => readmeRow.locator(".status").textContent(), { timeout: 30_000 }).toBe("ready");
  });

  it("then, with npm start stopped, ingests and answers from the terminal", async () => {
    await stopServer();
    const terminal = readme.slice(readme.indexOf("Or from the terminal"));
    const [ingest, ask] = [...terminal.matchAll(/`(node bin\/pgrag\.js [^`]+)`/g)].map((m) => m[1] ?? "");
    expect(ingest).toMatch(/ingest \.\/docs --collection docs$/);
    const ingested = await run("bash", ["-c", ingest ?? ""], { env });
    expect(ingested.stdout).toMatch(/^\d+ documents ready in collection "docs"/m);
    const question = (ask ?? "").replace("…", "How does read-your-writes work?");
    const answered = await run("bash", ["-c", question], { env });
    expect(answered.stdout).toMatch(/\[\d+\]/);
    expect(answered.stdout).toMatch(/^\[1\] \S+\.md/m);
  });
});

/** The first `count` JSON values written back to back, and what follows them. */
function leadingJsonValues(text: string, count: number): { values: unknown[]; rest: string } {
  const values: unknown[] = [];
  let at = 0;
  while (values.length < count) {
    const start = text.indexOf("{", at);
    let depth = 0;
    let inString = false;
    let end = start;
    for (; end < text.length; end++) {
      const c = text[end];
      if (inString) {
        if (c === "\\") end++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{") depth++;
      else if (c === "}" && --depth === 0) break;
    }
    values.push(JSON.parse(text.slice(start, end + 1)));
    at = end + 1;
  }
  return { values, rest: text.slice(at) };
}
