import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseEnv, promisify } from "node:util";
import pg from "pg";
import { waitFor } from "../../harness/wait-for.ts";
import { containerNodeCommand, readTopologyState } from "./topology.ts";

const run = promisify(execFile);
const CLUSTER_SCRIPT = fileURLToPath(new URL("../../replicas/cluster.sh", import.meta.url));

/** The test topology lives apart from a developer's running one: its own directory and ports. */
export const TEST_CLUSTER = {
  dir: "/var/tmp/pgrag/test",
  pgPort: 55432,
  bouncerPort: 56432,
  replicas: 2,
} as const;

export const TEST_ENV_FILE = `${TEST_CLUSTER.dir}/cluster.env`;

const clusterEnv = {
  ...process.env,
  PGRAG_CLUSTER_DIR: TEST_CLUSTER.dir,
  PGRAG_PG_PORT: String(TEST_CLUSTER.pgPort),
  PGRAG_PGBOUNCER_PORT: String(TEST_CLUSTER.bouncerPort),
};

/** replicas/cluster.sh against the test topology, or its node commands on the container topology. */
export async function cluster(...args: string[]): Promise<string> {
  const state = readTopologyState(TEST_CLUSTER);
  if (state.kind === "containers") {
    const [command = "", node] = args;
    await containerNodeCommand(state, command, node);
    return "";
  }
  const { stdout } = await run("bash", [CLUSTER_SCRIPT, ...args], { env: clusterEnv, maxBuffer: 1 << 20 });
  return stdout;
}

export function clusterUrls(): Record<string, string> {
  return parseEnv(readFileSync(TEST_ENV_FILE, "utf8")) as Record<string, string>;
}

export function nodePort(node: string): number {
  return node === "primary" ? TEST_CLUSTER.pgPort : TEST_CLUSTER.pgPort + Number(node.replace("replica", ""));
}

/**
 * A superuser query on one node, bypassing PgBouncer (for fault injection and inspection), on a
 * connection of its own: `settings` (e.g. planner switches) hold for that connection only.
 */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  node: string,
  text: string,
  values: unknown[] = [],
  database = "pgrag",
  settings: Record<string, string> = {},
): Promise<R[]> {
  const client = await adminClient(node, database, settings);
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** A connected superuser session on one node, for a test that holds a transaction open; end it. */
export async function adminClient(
  node: string,
  database = "pgrag",
  settings: Record<string, string> = {},
): Promise<pg.Client> {
  const state = readTopologyState(TEST_CLUSTER);
  const client = new pg.Client({
    // A container's socket is not reachable from here: its published port, with a password.
    host: state.kind === "containers" ? "127.0.0.1" : `${TEST_CLUSTER.dir}/sock`,
    password: state.superuserPassword,
    port: nodePort(node),
    user: "postgres",
    database,
    options: Object.entries(settings)
      .map(([name, value]) => `-c ${name}=${value}`)
      .join(" "),
  });
  client.on("error", () => {}); // a node stopped by a fault test; the pending query reports it
  await client.connect();
  return client;
}

/**
 * A tenant of its own with one collection of 'simple' lexemes (the words themselves), made by the
 * superuser: for tests that write chunks or postings directly. Delete the tenant to remove both.
 */
export async function adminTenantCollection(name: string): Promise<{ tenantId: string; collectionId: string }> {
  const tenantId = randomUUID();
  const collectionId = randomUUID();
  await adminQuery("primary", "INSERT INTO tenants (id, name) VALUES ($1, $2)", [tenantId, `${name}-${tenantId}`]);
  await adminQuery("primary", "INSERT INTO collections (id, tenant_id, name, language) VALUES ($1, $2, $3, 'simple')", [
    collectionId,
    tenantId,
    name,
  ]);
  return { tenantId, collectionId };
}

/** The `n` of a superuser `SELECT count(*)::int AS n …` on the primary: test set-ups and progress checks. */
export async function adminCount(text: string, values: unknown[] = []): Promise<number> {
  const [row] = await adminQuery<{ n: number }>("primary", text, values);
  return row?.n ?? 0;
}

/** Starts any stopped node and waits until every node answers through PgBouncer again. */
export async function restoreTopology(): Promise<void> {
  for (const node of ["primary", ...Array.from({ length: TEST_CLUSTER.replicas }, (_, i) => `replica${i + 1}`)]) {
    await cluster("start-node", node);
  }
  const urls = clusterUrls();
  const all = [urls.PGRAG_PRIMARY_URL ?? "", ...(urls.PGRAG_REPLICA_URLS ?? "").split(",").filter(Boolean)];
  // PgBouncer refuses a node for server_login_retry after a failed login: poll rather than sleep.
  for (const url of all) {
    await waitFor(`${new URL(url).pathname} through PgBouncer`, async () => {
      const client = new pg.Client({ connectionString: url });
      client.on("error", () => {}); // PgBouncer may refuse while the node comes back; we poll again
      await client.connect();
      try {
        await client.query("SELECT 1");
        return true;
      } finally {
        await client.end();
      }
    });
  }
}
