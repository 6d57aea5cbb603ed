import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { api } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { TEST_ENV_FILE } from "../../helpers/cluster.ts";
import { readScifactCorpus, SCIFACT_DIR } from "../../../src/evaluation/datasets.ts";
import { renderPdf } from "../../../harness/render-documents.ts";

const run = promisify(execFile);
const CLI = fileURLToPath(new URL("../../../bin/pgrag.js", import.meta.url));
const env = { ...process.env, PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "error" };
const pgrag = (...args: string[]) => run(process.execPath, [CLI, ...args], { env, timeout: 120_000 });
const tenant = `cli-${crypto.randomUUID()}`;

describe("the pgrag CLI", () => {
  it("ingests a folder of PDF, Markdown, text and HTML, then answers a question with citations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgrag-cli-"));
    mkdirSync(join(dir, "sub"));
    const [a, b, c] = await readScifactCorpus(3);
    writeFileSync(join(dir, "a.md"), `# ${a?.title}\n\n${a?.text}`);
    writeFileSync(join(dir, "b.txt"), `${b?.title}\n\n${b?.text}`);
    writeFileSync(join(dir, "sub", "c.html"), `<h1>${c?.title}</h1><p>${c?.text}</p>`);
    writeFileSync(join(dir, "image.png"), "not text");
    const [d] = (await readScifactCorpus(4)).slice(3);
    writeFileSync(
      join(dir, "d.pdf"),
      await renderPdf({ title: d?.title ?? "", sections: [{ paragraphs: [d?.text ?? ""] }] }),
    );
    const ingested = await pgrag("ingest", dir, "--tenant", tenant, "--collection", "notes");
    expect(ingested.stdout).toContain(`4 documents ready in collection "notes" of tenant "${tenant}"`);
    expect(ingested.stderr).toContain(
      `skipped: ${join(dir, "image.png")} (not PDF, Word, PowerPoint, Markdown, text or HTML)`,
    );

    const asked = await pgrag("ask", a?.title ?? "", "--tenant", tenant, "--collection", "notes");
    // A document named by its file: the name once, not "a.md — a.md".
    expect(asked.stdout).toMatch(/^\[1\] a\.md, characters \d+–\d+$/m);
    expect(asked.stdout).toContain("extractive answer");

    // The same collection from the other commands: search, list, delete.
    const found = await pgrag("search", a?.title ?? "", "--tenant", tenant, "--collection", "notes", "--k", "2");
    expect(found.stdout.split("\n")[0]).toMatch(/^1\t\d+\.\d{4}\ta\.md\t/);
    expect((await pgrag("collections", "--tenant", tenant)).stdout).toMatch(/^notes\tenglish\t/m);
    // A file is cited by its name and page.
    const inPdf = await pgrag("ask", d?.title ?? "", "--tenant", tenant, "--collection", "notes");
    expect(inPdf.stdout).toMatch(/^\[\d+\] d\.pdf, p\. 1$/m);
    const foundInPdf = await pgrag("search", d?.title ?? "", "--tenant", tenant, "--collection", "notes", "--k", "1");
    expect(foundInPdf.stdout).toMatch(/^1\t\d+\.\d{4}\td\.pdf\td\.pdf, p\. 1\t/);
    expect((await pgrag("collections", "create", "spare", "--tenant", tenant)).stdout).toBe(
      'created collection "spare" (english)\n',
    );
    expect((await pgrag("collections", "delete", "spare", "--tenant", tenant)).stdout).toBe(
      'deleted collection "spare" and its 0 document(s)\n',
    );
    expect((await pgrag("conversations", "--tenant", tenant)).stderr).toContain("has no conversations yet");
  });

  it("imports a folder of JSON Lines files, one import each, and names a bad line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgrag-import-"));
    const abstracts = await readScifactCorpus(12);
    const lines = abstracts.map((a) => JSON.stringify({ _id: a._id, title: a.title, text: a.text }));
    writeFileSync(join(dir, "a.jsonl"), `${lines.slice(0, 6).join("\n")}\n`);
    writeFileSync(join(dir, "b.ndjson"), `${lines.slice(6).join("\n")}\n`);
    writeFileSync(join(dir, "notes.txt"), "not an import");
    const imported = await pgrag("import", dir, "--tenant", tenant, "--collection", "bulk");
    expect(imported.stdout).toContain(
      `${join(dir, "a.jsonl")}: 6 documents imported, 0 unchanged, 0 failed (appended)`,
    );
    expect(imported.stdout).toContain(`${join(dir, "b.ndjson")}: 6 documents imported`);
    const asked = await pgrag("ask", abstracts[7]?.title ?? "", "--tenant", tenant, "--collection", "bulk");
    expect(asked.stdout).toMatch(/\[1\] /);

    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, `${lines[0]}\n{"_id": "x"}\n`);
    await expect(pgrag("import", bad, "--tenant", tenant, "--collection", "bulk")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining("line 2: invalid request: content"),
    });
  });

  it("creates, lists and revokes API keys, and a created key works on the API until revoked", async () => {
    const owner = `keys-${crypto.randomUUID()}`;
    const created = await pgrag("keys", "create", "--tenant", owner, "--name", "ci", "--scopes", "read");
    const key = /^(pgr_\S+)$/m.exec(created.stdout)?.[1] ?? "";
    const keyId = /^key id (\S+)$/m.exec(created.stdout)?.[1] ?? "";
    expect(key).toMatch(/^pgr_/);
    expect(created.stdout).toContain("Shown once");
    const app = await startTestApp({ PGRAG_AUTH_CACHE_TTL_MS: "1" });
    expect((await api(app, "GET", "/v1/collections", { key })).status).toBe(200);
    expect((await api(app, "POST", "/v1/collections", { key, json: { name: "x" } })).status).toBe(403); // read scope only
    expect((await pgrag("keys", "list", "--tenant", owner)).stdout).toMatch(
      new RegExp(`^${keyId}  pgr_\\w+_…  ci  \\[read\\]  reads as the whole tenant  active$`, "m"),
    );
    expect((await pgrag("keys", "revoke", keyId)).stdout).toBe(`revoked ${keyId}\n`);
    expect((await pgrag("keys", "list", "--tenant", owner)).stdout).toMatch(/ revoked \d{4}-/);
    await waitFor(
      "the revoked key refused",
      async () => (await api(app, "GET", "/v1/collections", { key })).status === 401,
    );
  });

  it("fails with a clear message and a non-zero exit, and has --help", async () => {
    await expect(pgrag("ask", "anything", "--tenant", tenant, "--collection", "missing")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no collection "missing"'),
    });
    await expect(pgrag("ingest", "/nonexistent/folder")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining("no such file or folder"),
    });
    await expect(pgrag("frobnicate")).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown command "frobnicate"'),
    });
    const help = await pgrag("ask", "--help");
    expect(help.stdout).toContain('ask "<question>"');
  });

  it("evaluates a BEIR folder: ingests it and prints nDCG@10, Recall@100 and latencies per mode, with and without the reranker", async () => {
    // A small BEIR folder cut from SciFact: eight judged queries, their relevant abstracts, and
    // some distractors.
    const [header = "", ...judgements] = readFileSync(`${SCIFACT_DIR}/qrels/train.tsv`, "utf8").trim().split("\n");
    const queryIds = [...new Set(judgements.map((line) => line.split("\t")[0]))].slice(0, 8);
    const qrels = judgements.filter((line) => queryIds.includes(line.split("\t")[0]));
    const relevant = new Set(qrels.map((line) => line.split("\t")[1]));
    const corpusLines = readFileSync(`${SCIFACT_DIR}/corpus.jsonl`, "utf8").trim().split("\n");
    const corpus = corpusLines.filter((line, i) => i < 60 || relevant.has((JSON.parse(line) as { _id: string })._id));
    const queries = readFileSync(`${SCIFACT_DIR}/queries.jsonl`, "utf8")
      .trim()
      .split("\n")
      .filter((line) => queryIds.includes((JSON.parse(line) as { _id: string })._id));
    const dir = join(mkdtempSync(join(tmpdir(), "pgrag-eval-")), `mini-scifact-${crypto.randomUUID().slice(0, 8)}`);
    mkdirSync(join(dir, "qrels"), { recursive: true });
    writeFileSync(join(dir, "corpus.jsonl"), `${corpus.join("\n")}\n`);
    writeFileSync(join(dir, "queries.jsonl"), `${queries.join("\n")}\n`);
    writeFileSync(join(dir, "qrels", "train.tsv"), `${header}\n${qrels.join("\n")}\n`);

    const { stdout } = await run(process.execPath, [CLI, "eval", "--dataset", dir], {
      env: { ...env, PGRAG_RERANK_MODEL: "dev-reranker" },
      timeout: 120_000,
    });
    expect(stdout).toMatch(new RegExp(`corpus: ${corpus.length} documents in collection "${dir.split("/").at(-1)}"`));
    const rows = Object.fromEntries(
      [
        ...stdout.matchAll(
          /^((?:bm25|vector|hybrid)(?:\+rerank)?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$/gm,
        ),
      ].map((m) => [m[1], m.slice(2).map(Number)]),
    );
    expect(Object.keys(rows).sort()).toEqual([
      "bm25",
      "bm25+rerank",
      "hybrid",
      "hybrid+rerank",
      "vector",
      "vector+rerank",
    ]);
    for (const [queriesRun, ndcg, recall, ...latencies] of Object.values(rows) as number[][]) {
      expect(queriesRun).toBe(queryIds.length);
      expect(ndcg).toBeGreaterThan(0);
      expect(ndcg).toBeLessThanOrEqual(1);
      expect(recall).toBeLessThanOrEqual(1);
      for (const ms of latencies) expect(ms).toBeGreaterThan(0);
    }
    // With the relevant abstracts among 60-odd documents, full text finds most of them.
    expect(rows.bm25?.[2]).toBeGreaterThan(0.8);
  });

  it("keeps stdout for results: logs go to stderr, and a port in use is one line saying what to do", async () => {
    const talkative = { ...env, PGRAG_LOG_LEVEL: "info", PGRAG_LOG_FORMAT: "json" };
    const listed = await run(process.execPath, [CLI, "keys", "list", "--tenant", tenant], { env: talkative });
    expect(listed.stdout).not.toMatch(/"level":/);
    // A port already taken by another server.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const refused = await run(process.execPath, [CLI, "serve"], {
        env: { ...talkative, PGRAG_PORT: String(port), PGRAG_WORKER_CONCURRENCY: "0" },
        timeout: 120_000,
      }).catch((error: unknown) => error as { code: number; stdout: string; stderr: string });
      expect(refused).toMatchObject({ code: 1 });
      const { stderr } = refused as { stderr: string };
      expect(stderr).toContain(
        `pgrag: 127.0.0.1:${port} is in use (another pgrag, or another server); stop it, or choose another port with PGRAG_PORT`,
      );
      expect(stderr).not.toMatch(/at .*\.ts:\d+/);
    } finally {
      taken.close();
    }
  });
});
