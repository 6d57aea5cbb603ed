import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../../replicas/cluster.sh", import.meta.url));
// A small cluster of its own (primary only), apart from the suite's shared topology.
const env = {
  ...process.env,
  PGRAG_CLUSTER_DIR: "/var/tmp/pgrag/script-test",
  PGRAG_PG_PORT: "55532",
  PGRAG_PGBOUNCER_PORT: "56532",
};
const cluster = (...args: string[]) => run("bash", [SCRIPT, ...args], { env });

afterAll(async () => {
  await cluster("down").catch(() => undefined);
  await rm(env.PGRAG_CLUSTER_DIR, { recursive: true, force: true });
});

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(true));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(false)));
  });
}

describe("replicas/cluster.sh", () => {
  it("comes up, is safe to bring up twice, reports status, and goes down leaving no process or socket", async () => {
    await cluster("up", "--replicas", "0");
    const again = await cluster("up", "--replicas", "0");
    expect(again.stdout).toContain("up: primary :55532, 0 replica(s), pgbouncer :56532");
    expect(existsSync(`${env.PGRAG_CLUSTER_DIR}/cluster.env`)).toBe(true);
    const status = await cluster("status");
    expect(status.stdout).toMatch(/primary\s+:55532 up\s+primary, wal/);
    expect(status.stdout).toMatch(/pgbouncer\s+:56532 up/);
    await cluster("down");
    expect(await listening(55532)).toBe(false);
    expect(await listening(56532)).toBe(false);
    expect(readdirSync(`${env.PGRAG_CLUSTER_DIR}/sock`)).toEqual([]);
    expect((await cluster("status")).stdout).toMatch(/primary\s+:55532 down/);
  });

  it("refuses clearly when a port it needs is taken by another program", async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(56532, "127.0.0.1", () => resolve()));
    try {
      await expect(cluster("up", "--replicas", "0")).rejects.toMatchObject({
        stderr: expect.stringMatching(/port 56532 \(wanted for pgbouncer\) is already in use by another program/),
      });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
      await cluster("down");
    }
  });
});
