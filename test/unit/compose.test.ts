import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CONFIG_VARIABLES, loadConfig } from "../../src/config.ts";

// No Docker engine runs here, so docker-compose.yml is checked against the app's own config instead.
const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
interface Service {
  image?: string;
  build?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  profiles?: string[];
  healthcheck?: object;
  ports?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver: string; capabilities: string[] }[] } } };
}
const compose = parse(readFileSync(root("docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const bouncerIni = readFileSync(root("replicas/docker/pgbouncer.ini"), "utf8");
const bouncerDatabases: Record<string, { host: string; port: number }> = Object.fromEntries(
  [...bouncerIni.matchAll(/^(\w+) = host=(\S+) port=(\d+)/gm)].map((m) => [
    m[1] ?? "",
    { host: m[2] ?? "", port: Number(m[3]) },
  ]),
);
const bouncerPort = Number(/^listen_port = (\d+)/m.exec(bouncerIni)?.[1]);
const userlist = Object.fromEntries(
  [...readFileSync(root("replicas/docker/userlist.txt"), "utf8").matchAll(/^"(\w+)" "([^"]+)"/gm)].map((m) => [
    m[1],
    m[2],
  ]),
);

/** Compose's ${VAR:-default} as it resolves with nothing set. */
const resolve = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, "$1")]));

describe("docker-compose.yml", () => {
  it("publishes only the API", () => {
    const published = Object.entries(services)
      .filter(([, service]) => (service.ports ?? []).length > 0)
      .map(([name]) => name);
    expect(published).toEqual(["api"]);
  });

  it("has the production-like topology, each database service with a health check", () => {
    for (const name of [
      "primary",
      "replica1",
      "replica2",
      "pgbouncer",
      "migrate",
      "api",
      "worker",
      "dev-inference",
      "vllm",
    ]) {
      expect(services[name], name).toBeDefined();
    }
    for (const name of ["primary", "replica1", "replica2", "pgbouncer", "api", "dev-inference", "vllm"]) {
      expect(services[name]?.healthcheck, `${name} health check`).toBeDefined();
    }
    expect(services.primary?.image).toMatch(/^pgvector\/pgvector:/);
    expect(services.vllm?.profiles).toEqual(["gpu"]);
    expect(services.vllm?.deploy?.resources?.reservations?.devices?.[0]).toMatchObject({
      driver: "nvidia",
      capabilities: ["gpu"],
    });
    expect(services["dev-inference"]?.profiles).toEqual(["dev"]);
  });

  it("gives the app only variables its config knows, and a config that validates", () => {
    for (const name of ["api", "worker", "migrate", "dev-inference"]) {
      const env = services[name]?.environment ?? {};
      for (const key of Object.keys(env).filter((k) => k.startsWith("PGRAG_")))
        expect(CONFIG_VARIABLES, `${name}: ${key}`).toContain(key);
    }
    for (const name of ["api", "worker", "migrate"]) {
      expect(() => loadConfig(resolve(services[name]?.environment ?? {})), name).not.toThrow();
    }
  });

  it("points the app's URLs at services, ports and PgBouncer databases that exist, with matching passwords", () => {
    const config = loadConfig(resolve(services.api?.environment ?? {}));
    for (const url of [config.database.primaryUrl, ...config.database.replicaUrls]) {
      const u = new URL(url);
      expect(u.hostname).toBe("pgbouncer");
      expect(Number(u.port)).toBe(bouncerPort);
      expect(bouncerDatabases[u.pathname.slice(1)], u.pathname).toBeDefined();
      expect(decodeURIComponent(u.password)).toBe(userlist[u.username]);
    }
    const migration = new URL(config.database.migrationUrl);
    expect([migration.hostname, migration.port]).toEqual(["primary", "5432"]);
    for (const { host, port } of Object.values(bouncerDatabases)) {
      expect(services[host], host).toBeDefined();
      expect(port).toBe(5432);
    }
    expect(bouncerDatabases.analytics?.host).toMatch(/^replica/);
    // The replica behind the analysts' pool is the one that lets the analyst log in.
    expect(services[bouncerDatabases.analytics?.host ?? ""]?.environment?.SERVES_ANALYTICS).toBe("true");
    const inference = new URL(config.inference.url ?? "");
    expect(inference.hostname).toBe("dev-inference");
    expect(services["dev-inference"]?.command).toEqual([
      "dev-inference",
      "--host",
      "0.0.0.0",
      "--port",
      inference.port,
    ]);
  });
});
