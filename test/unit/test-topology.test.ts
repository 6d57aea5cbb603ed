import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { composeSecrets } from "../../src/cli/compose-secrets.command.ts";
import { loadConfig } from "../../src/config.ts";
import { TEST_CLUSTER } from "../helpers/cluster.ts";
import { containerTopologySpec, interpolateCompose, selectTopology } from "../helpers/topology.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const composeText = readFileSync(`${root}/docker-compose.yml`, "utf8");
const secrets = composeSecrets();
const compose = parse(interpolateCompose(composeText, secrets), { merge: true }) as {
  services: Record<string, { image: string; environment: Record<string, string> }>;
};
const spec = containerTopologySpec(composeText, root, TEST_CLUSTER, secrets);
const reachable = (answer: boolean) => async () => answer;

describe("the suite's topology selection", () => {
  it("prefers containers where a Docker engine answers and falls back to native", async () => {
    expect(await selectTopology(undefined, reachable(true))).toBe("containers");
    expect(await selectTopology("auto", reachable(false))).toBe("native");
    expect(await selectTopology("native", reachable(true))).toBe("native");
    expect(await selectTopology("containers", reachable(true))).toBe("containers");
  });

  it("refuses a forced container run without an engine, and an unknown choice, with a message", async () => {
    await expect(selectTopology("containers", reachable(false))).rejects.toThrow(
      /no reachable Docker engine.*DOCKER_HOST/,
    );
    await expect(selectTopology("kubernetes", reachable(true))).rejects.toThrow(/auto, native or containers/);
  });
});

describe("the container topology, read from docker-compose.yml", () => {
  it("runs compose's images for a primary, two replicas and PgBouncer on the native topology's ports", () => {
    expect(spec.nodes.map((n) => [n.service, n.image, n.hostPort])).toEqual([
      ["primary", compose.services.primary?.image, TEST_CLUSTER.pgPort],
      ["replica1", compose.services.replica1?.image, TEST_CLUSTER.pgPort + 1],
      ["replica2", compose.services.replica2?.image, TEST_CLUSTER.pgPort + 2],
      ["pgbouncer", compose.services.pgbouncer?.image, TEST_CLUSTER.bouncerPort],
    ]);
    expect(spec.nodes.map((n) => n.containerPort)).toEqual([5432, 5432, 5432, 6432]);
  });

  it("copies compose's init script, replica entrypoint and PgBouncer files in, executable where scripts", () => {
    const files = spec.nodes.flatMap((n) => n.files.map((f) => ({ service: n.service, ...f })));
    for (const file of files) expect(existsSync(file.source), file.source).toBe(true);
    expect(files).toContainEqual(
      expect.objectContaining({ service: "primary", target: "/docker-entrypoint-initdb.d/10-pgrag.sh", mode: 0o755 }),
    );
    expect(files).toContainEqual(
      expect.objectContaining({ service: "replica2", target: "/replica-entrypoint.sh", mode: 0o755 }),
    );
    expect(
      files
        .filter((f) => f.service === "pgbouncer")
        .map((f) => f.target)
        .sort(),
    ).toEqual(["/etc/pgbouncer/pgbouncer.ini", "/etc/pgbouncer/pgbouncer_hba.conf", "/pgbouncer-entrypoint.sh"]);
    // No named volumes: each run starts from empty data directories.
    expect(files.every((f) => !f.target.startsWith("/var/lib/postgresql"))).toBe(true);
  });

  it("keeps compose's commands, entrypoints, users and health checks (durations in ms)", () => {
    const [primary, replica1] = spec.nodes;
    expect(primary?.command?.slice(0, 3)).toEqual(["postgres", "-c", "wal_level=replica"]);
    expect(primary?.command).toContain("hot_standby_feedback=on");
    expect(replica1?.entrypoint).toEqual(["/replica-entrypoint.sh"]);
    expect(replica1?.user).toBe("postgres");
    expect(replica1?.environment.REPLICA_SLOT).toBe("replica1_slot");
    for (const node of spec.nodes) {
      expect(node.healthCheck.test[0]).toBe("CMD-SHELL");
      expect(node.healthCheck).toMatchObject({ interval: 5_000, timeout: 3_000, retries: 20 });
    }
  });

  it("writes an env file the app's config accepts, pointing at the published ports with the generated passwords", () => {
    const config = loadConfig(spec.env);
    const primaryUrl = new URL(config.database.primaryUrl);
    expect([primaryUrl.hostname, primaryUrl.port, primaryUrl.pathname]).toEqual([
      "127.0.0.1",
      String(TEST_CLUSTER.bouncerPort),
      "/primary",
    ]);
    expect(config.database.replicaUrls.map((u) => new URL(u).pathname)).toEqual(["/replica1", "/replica2"]);
    expect(new URL(config.database.migrationUrl).port).toBe(String(TEST_CLUSTER.pgPort));
    expect(new URL(spec.env.PGRAG_ANALYST_URL ?? "").password).toBe(secrets.PGRAG_ANALYST_PASSWORD);
    expect(primaryUrl.password).toBe(secrets.PGRAG_APP_PASSWORD);
    expect(new URL(config.database.migrationUrl).password).toBe(secrets.PGRAG_OWNER_PASSWORD);
    expect(spec.superuserPassword).toBe(secrets.POSTGRES_PASSWORD);
    // The primary creates the roles with verifiers; PgBouncer gets the same verifiers and no password.
    const bouncer = spec.nodes.find((n) => n.service === "pgbouncer");
    expect(bouncer?.environment).toEqual({
      PGRAG_APP_SCRAM: secrets.PGRAG_APP_SCRAM,
      PGRAG_ANALYST_SCRAM: secrets.PGRAG_ANALYST_SCRAM,
    });
    expect(spec.nodes[0]?.environment.PGRAG_APP_SCRAM).toBe(secrets.PGRAG_APP_SCRAM);
  });
});
