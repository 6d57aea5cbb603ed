import { randomUUID } from "node:crypto";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { composeSecrets } from "../../../src/cli/compose-secrets.command.ts";
import { adminQuery, clusterUrls, nodePort, TEST_CLUSTER } from "../../helpers/cluster.ts";

/**
 * Who may log in where, tried for real: each role through each PgBouncer database and straight to
 * each node. PgBouncer's hba and each node's pg_hba.conf must let a role reach only what it needs.
 */
type Role = "app" | "analyst" | "owner";

const urls = clusterUrls();
const credentials: Record<Role, { user: string; password: string }> = {
  app: fromUrl(urls.PGRAG_PRIMARY_URL),
  analyst: fromUrl(urls.PGRAG_ANALYST_URL),
  owner: fromUrl(urls.PGRAG_MIGRATION_URL),
};

function fromUrl(url: string | undefined) {
  const parsed = new URL(url ?? "");
  return { user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
}

async function canLogIn(role: Role, port: number, database: string): Promise<boolean> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    database,
    ...credentials[role],
    connectionTimeoutMillis: 5_000,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch (error) {
    // A refused login, never anything else (a node down would be a broken test, not a refusal).
    expect((error as Error).message).toMatch(/login rejected|no pg_hba.conf entry|not permitted|no such database/);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const bouncer = TEST_CLUSTER.bouncerPort;
const TARGETS: [string, number, string, Record<Role, boolean>][] = [
  ["PgBouncer primary", bouncer, "primary", { app: true, analyst: false, owner: false }],
  ["PgBouncer replica1", bouncer, "replica1", { app: true, analyst: false, owner: false }],
  ["PgBouncer replica2", bouncer, "replica2", { app: true, analyst: false, owner: false }],
  ["PgBouncer analytics", bouncer, "analytics", { app: false, analyst: true, owner: false }],
  ["primary directly", nodePort("primary"), "pgrag", { app: true, analyst: false, owner: true }],
  ["replica1 directly", nodePort("replica1"), "pgrag", { app: true, analyst: false, owner: false }],
  ["replica2 (analytics) directly", nodePort("replica2"), "pgrag", { app: true, analyst: true, owner: false }],
];

describe("who may log in where", () => {
  it("matches the access table for every role and every pooled database and node", async () => {
    const actual: Record<string, Record<Role, boolean>> = {};
    const expected: Record<string, Record<Role, boolean>> = {};
    for (const [target, port, database, allowed] of TARGETS) {
      expected[target] = allowed;
      actual[target] = {
        app: await canLogIn("app", port, database),
        analyst: await canLogIn("analyst", port, database),
        owner: await canLogIn("owner", port, database),
      };
    }
    expect(actual).toEqual(expected);
  });
});

describe("compose's secrets", () => {
  it("are verifiers PostgreSQL stores as given, so PgBouncer's auth file can hold the same one", async () => {
    const role = `compose_probe_${randomUUID().slice(0, 8)}`;
    const verifier = composeSecrets().PGRAG_APP_SCRAM ?? "";
    await adminQuery("primary", `CREATE ROLE ${role} LOGIN PASSWORD '${verifier}'`);
    try {
      const [stored] = await adminQuery<{ rolpassword: string }>(
        "primary",
        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
        [role],
      );
      expect(stored?.rolpassword).toBe(verifier);
    } finally {
      await adminQuery("primary", `DROP ROLE ${role}`);
    }
  });
});
