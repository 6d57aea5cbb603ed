import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app.ts";
import { loadConfig } from "../../../src/config.ts";
import { startEmbeddedDatabase } from "../../../src/db/embedded.ts";
import { pino } from "pino";
import { api } from "../../helpers/api.ts";
import { waitForDocuments } from "../../helpers/ingest.ts";
import { readScifactCorpus } from "../../../src/evaluation/datasets.ts";

// No database URL at all: the embedded PGlite default, with the very same code paths.
const dataDir = join(mkdtempSync(join(tmpdir(), "pgrag-embedded-")), "data");
const config = loadConfig({
  PGRAG_EMBEDDED_DATA_DIR: dataDir,
  PGRAG_EMBEDDED_PORT: "55997",
  PGRAG_PORT: "0",
  PGRAG_LOG_LEVEL: "silent",
});
// Every log line the app writes, to check what reaches logs.
const logLines: string[] = [];
const app = createApp(config, {
  logger: pino({ level: "info" }, { write: (line: string) => void logLines.push(line) }),
});
// Started once for the file (migrating itself is the first test's subject): stopped after it.
beforeAll(() => app.start({ listen: false }));
afterAll(() => app.stop());

describe("the embedded default (PGlite)", () => {
  it("migrates itself, hands out a key, and runs ingestion, search, chat and deletion", async () => {
    const socketDir = join(dataDir, "..", "socket");
    expect(config.database.embedded).toEqual({ dataDir, port: 55997, socketDir });
    // Reachable only through a socket in a directory of this OS user's: no TCP port at all.
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    expect(existsSync(join(socketDir, ".s.PGSQL.55997"))).toBe(true);
    await expect(
      new Promise((resolve, reject) => connect(55997, "127.0.0.1").once("connect", resolve).once("error", reject)),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const key = app.devApiKey() ?? "";
    expect(key).toMatch(/^pgr_/);
    expect(logLines.join("")).toContain("embedded PostgreSQL");
    expect(logLines.join("")).not.toContain(key); // logs are shipped and kept: the key is shown in the terminal only
    expect((await api(app, "POST", "/v1/collections", { key, json: { name: "sci" } })).status).toBe(201);
    const abstracts = await readScifactCorpus(10);
    const put = await api(app, "POST", "/v1/collections/sci/documents", {
      key,
      json: { documents: abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
    });
    expect(put.status).toBe(202);
    await waitForDocuments(
      app,
      key,
      "sci",
      abstracts.map((a) => a._id),
    );
    const target = abstracts[3];
    for (const mode of ["bm25", "vector", "hybrid"]) {
      const found = await api<{ results: { external_id: string }[]; served_by: string }>(app, "POST", "/v1/search", {
        key,
        json: { collection: "sci", query: target?.title, mode },
      });
      expect(found.body.results[0]?.external_id, mode).toBe(target?._id);
      expect(found.body.served_by).toBe("primary");
    }
    const chat = await api<{ answer: string; citations: { external_id: string }[]; conversation_id: string }>(
      app,
      "POST",
      "/v1/chat",
      {
        key,
        json: { collection: "sci", question: target?.title, stream: false },
      },
    );
    expect(chat.status).toBe(200);
    expect(chat.body.citations.map((c) => c.external_id)).toContain(target?._id);
    const history = await api<{ messages: unknown[] }>(app, "GET", `/v1/conversations/${chat.body.conversation_id}`, {
      key,
    });
    expect(history.body.messages).toHaveLength(2);
    expect((await api(app, "DELETE", `/v1/collections/sci/documents/${target?._id}`, { key })).status).toBe(200);
    const after = await api<{ results: { external_id: string }[] }>(app, "POST", "/v1/search", {
      key,
      json: { collection: "sci", query: target?.title, mode: "bm25" },
    });
    expect(after.body.results.map((r) => r.external_id)).not.toContain(target?._id);
  });

  it("has one owner: a second process is refused with the owner's pid, and a dead owner's lock is taken over", async () => {
    const embedded = config.database.embedded;
    if (!embedded) throw new Error("embedded expected");
    const socket = join(embedded.socketDir, ".s.PGSQL.55997");
    // The app started above owns the folder: the command line is refused, and the socket stays.
    const cli = spawnSync(process.execPath, ["bin/pgrag.js", "ingest", "README.md", "--collection", "x"], {
      env: {
        ...process.env,
        PGRAG_EMBEDDED_DATA_DIR: dataDir,
        PGRAG_EMBEDDED_PORT: "55997",
        PGRAG_LOG_LEVEL: "silent",
      },
      encoding: "utf8",
    });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain(`the embedded database is in use by pgrag process ${process.pid}`);
    expect(existsSync(socket)).toBe(true);
    await expect(startEmbeddedDatabase(embedded)).rejects.toThrow(/in use by pgrag process/);
    expect(existsSync(socket)).toBe(true);

    // A folder whose owner died (kill -9: lock and socket left behind) is taken over.
    const other = join(mkdtempSync(join(tmpdir(), "pgrag-embedded-")), "data");
    const otherSockets = join(other, "..", "socket");
    mkdirSync(otherSockets, { recursive: true, mode: 0o700 });
    const dead = spawnSync("true").pid;
    writeFileSync(join(otherSockets, "owner.lock"), JSON.stringify({ pid: dead, started: "earlier" }));
    writeFileSync(join(otherSockets, ".s.PGSQL.55998"), "");
    const started = await startEmbeddedDatabase({ dataDir: other, port: 55998, socketDir: otherSockets });
    expect(JSON.parse(readFileSync(join(otherSockets, "owner.lock"), "utf8"))).toMatchObject({ pid: process.pid });
    await started.stop();
    expect(existsSync(join(otherSockets, "owner.lock"))).toBe(false);
  });
});
