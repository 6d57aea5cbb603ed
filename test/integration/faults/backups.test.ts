import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../../replicas/cluster.sh", import.meta.url));
// A primary of its own, apart from the suite's shared topology: its archive and backups are this test's.
const DIR = "/var/tmp/pgrag/backup-test";
const PORT = 55632;
const env = { ...process.env, PGRAG_CLUSTER_DIR: DIR, PGRAG_PG_PORT: String(PORT), PGRAG_PGBOUNCER_PORT: "56632" };
const cluster = (...args: string[]) => run("bash", [SCRIPT, ...args], { env, maxBuffer: 1 << 22 });
const restored = (name: string) => `${DIR}-restored-${name}`;

/** A superuser query over the cluster's private socket. */
async function query<R extends pg.QueryResultRow>(port: number, text: string): Promise<R[]> {
  const client = new pg.Client({ host: `${DIR}/sock`, port, user: "postgres", database: "pgrag" });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await rm(DIR, { recursive: true, force: true });
  await cluster("up", "--replicas", "0");
}, 120_000);

afterAll(async () => {
  for (const name of ["name", "time", "lsn"]) await cluster("discard-restore", restored(name)).catch(() => undefined);
  await cluster("down").catch(() => undefined);
  await rm(DIR, { recursive: true, force: true });
});

describe("backups and point-in-time recovery (pgBackRest)", () => {
  it("restore into a new directory at a named point, a time and an LSN between two batches; the restored server takes writes", async () => {
    await cluster("backup", "--type", "full");
    await query(PORT, "CREATE TABLE probe (batch text NOT NULL, n int NOT NULL)");
    await query(PORT, "INSERT INTO probe SELECT 'A', n FROM generate_series(1, 100) AS n");
    // pgBackRest records a backup's end in whole seconds and picks, for a time, a backup that ended
    // before it: the mark must not fall in the backup's last second.
    await query(PORT, "SELECT pg_sleep(1.1)");
    // After batch A's commit, before batch B's: a time, a WAL position, a named point.
    const [mark] = await query<{ at: string; lsn: string }>(
      PORT,
      "SELECT clock_timestamp()::text AS at, pg_current_wal_lsn()::text AS lsn",
    );
    await cluster("restore-point", "before-b");
    await query(PORT, "INSERT INTO probe SELECT 'B', n FROM generate_series(1, 100) AS n");
    // An incremental backup after B does not change what a target before it restores.
    const { stdout: info } = await cluster("backup", "--type", "incr");
    expect(info).toMatch(/incr backup/);

    const targets = { name: "name:before-b", time: `time:${mark?.at}`, lsn: `lsn:${mark?.lsn}` };
    for (const [kind, target] of Object.entries(targets)) {
      const port = PORT + 50 + Object.keys(targets).indexOf(kind);
      const { stdout } = await cluster("restore", "--to", target, "--into", restored(kind), "--port", String(port));
      expect(stdout).toMatch(/restored: a server on/);
      const batches = await query<{ batch: string; rows: number }>(
        port,
        "SELECT batch, count(*)::int AS rows FROM probe GROUP BY batch ORDER BY batch",
      );
      expect(batches, `restored to ${target}`).toEqual([{ batch: "A", rows: 100 }]);
      const [state] = await query<{ recovering: boolean }>(port, "SELECT pg_is_in_recovery() AS recovering");
      expect(state?.recovering).toBe(false);
      await query(port, "INSERT INTO probe VALUES ('after-restore', 1)");
      expect(await query(port, "SELECT 1 FROM probe WHERE batch = 'after-restore'")).toHaveLength(1);
      await cluster("discard-restore", restored(kind));
    }
    // The source goes on untouched, both batches in it.
    expect(await query(PORT, "SELECT DISTINCT batch FROM probe ORDER BY 1")).toEqual([{ batch: "A" }, { batch: "B" }]);
  }, 300_000);

  it("refuse a target they cannot read, and a directory that is not empty, saying what to give", async () => {
    await expect(cluster("restore", "--to", "yesterday", "--into", restored("name"))).rejects.toMatchObject({
      stderr: expect.stringMatching(/--to takes name:NAME, time:TIME .* or lsn:LSN/),
    });
    await expect(cluster("restore", "--to", "name:x", "--into", DIR)).rejects.toMatchObject({
      stderr: expect.stringMatching(/is not empty: restore into a new directory/),
    });
    await expect(cluster("restore-point", "no spaces")).rejects.toMatchObject({
      stderr: expect.stringMatching(/restore point's name/),
    });
  });
});
