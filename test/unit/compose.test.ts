import { createHash, createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
// pg's own SCRAM client: an implementation independent of ours to log in against our verifier.
import sasl from "pg/lib/crypto/sasl.js";
import { composeSecrets } from "../../src/cli/compose-secrets.command.ts";
import { CONFIG_VARIABLES, loadConfig } from "../../src/config.ts";
import { scramVerifier } from "../../src/db/scram-verifier.ts";
import { interpolateCompose } from "../helpers/topology.ts";

// No Docker engine runs here, so docker-compose.yml is checked against the app's own config instead.
const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
interface Service {
  image?: string;
  build?: string;
  command?: string[] | string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  profiles?: string[];
  healthcheck?: object;
  ports?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver: string; capabilities: string[] }[] } } };
}
const composeText = readFileSync(root("docker-compose.yml"), "utf8");
// As compose resolves it with the .env `pgrag compose-secrets` writes and nothing else set.
const secrets = composeSecrets();
const compose = parse(interpolateCompose(composeText, secrets), { merge: true }) as {
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
      expect(() => loadConfig(services[name]?.environment ?? {}), name).not.toThrow();
    }
  });

  it("points the app's URLs at services, ports and PgBouncer databases that exist, with the generated passwords", () => {
    const config = loadConfig(services.api?.environment ?? {});
    for (const url of [config.database.primaryUrl, ...config.database.replicaUrls]) {
      const u = new URL(url);
      expect(u.hostname).toBe("pgbouncer");
      expect(Number(u.port)).toBe(bouncerPort);
      expect(bouncerDatabases[u.pathname.slice(1)], u.pathname).toBeDefined();
      expect(decodeURIComponent(u.password)).toBe(secrets.PGRAG_APP_PASSWORD);
    }
    const migration = new URL(loadConfig(services.migrate?.environment ?? {}).database.migrationUrl);
    expect(decodeURIComponent(migration.password)).toBe(secrets.PGRAG_OWNER_PASSWORD);
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

  it("holds no secret: every password and verifier comes from the environment, and compose refuses to start without it", () => {
    expect(composeText).not.toMatch(/PASSWORD: [^$]/);
    expect(composeText).not.toMatch(/SCRAM-SHA-256/);
    const required = [...composeText.matchAll(/\$\{(\w+):\?/g)].map((m) => m[1]);
    // The analyst's password is for people (the analyst's own login); the superuser has no verifier.
    expect(new Set(required)).toEqual(
      new Set(Object.keys(secrets).filter((k) => k !== "PGRAG_ANALYST_PASSWORD" && k !== "POSTGRES_SCRAM")),
    );
    expect(() => interpolateCompose(composeText, {})).toThrow(
      /required variable \w+ is missing: run npm run compose:secrets first/,
    );
    expect(existsSync(root("replicas/docker/userlist.txt"))).toBe(false);
  });

  it("gives each service only the secrets it needs: verifiers to the primary and PgBouncer, a password to who logs in", () => {
    const secretNames = (name: string) =>
      Object.entries(services[name]?.environment ?? {})
        .filter(([, value]) => Object.values(secrets).some((secret) => String(value).includes(secret)))
        .map(([key]) => key)
        .sort();
    expect(secretNames("primary")).toEqual([
      "PGRAG_ANALYST_SCRAM",
      "PGRAG_APP_SCRAM",
      "PGRAG_OWNER_SCRAM",
      "POSTGRES_PASSWORD",
      "REPLICATOR_SCRAM",
    ]);
    expect(secretNames("pgbouncer")).toEqual(["PGRAG_ANALYST_SCRAM", "PGRAG_APP_SCRAM"]);
    expect(secretNames("replica1")).toEqual(["REPLICATOR_PASSWORD"]);
    expect(secretNames("api")).toEqual(["PGRAG_INFERENCE_API_KEY", "PGRAG_PRIMARY_URL", "PGRAG_REPLICA_URLS"]);
    expect(secretNames("worker")).toEqual(["PGRAG_INFERENCE_API_KEY", "PGRAG_PRIMARY_URL", "PGRAG_REPLICA_URLS"]);
    expect(secretNames("dev-inference")).toEqual(["PGRAG_INFERENCE_API_KEY"]);
    expect(secretNames("migrate")).toEqual(["PGRAG_MIGRATION_URL", "PGRAG_PRIMARY_URL", "PGRAG_REPLICA_URLS"]);
    expect(services.pgbouncer?.entrypoint).toEqual(["/pgbouncer-entrypoint.sh"]);
    expect(bouncerIni).toMatch(/^auth_file = \/tmp\/pgbouncer\/userlist.txt$/m);
    expect(bouncerIni).toMatch(/^auth_type = hba$/m);
  });
});

describe("pgrag compose-secrets", () => {
  it("makes a random password and its SCRAM-SHA-256 verifier per role", () => {
    const secrets = composeSecrets();
    for (const prefix of ["POSTGRES", "REPLICATOR", "PGRAG_OWNER", "PGRAG_APP", "PGRAG_ANALYST"]) {
      expect(secrets[`${prefix}_PASSWORD`]).toMatch(/^[0-9a-f]{48}$/);
      const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(secrets[`${prefix}_SCRAM`] ?? "") ?? [];
      expect(secrets[`${prefix}_SCRAM`]).toBe(
        scramVerifier(secrets[`${prefix}_PASSWORD`] ?? "", Buffer.from(salt ?? "", "base64"), Number(iterations)),
      );
    }
  });

  it("answers a SCRAM login as PostgreSQL would: pg's own client proves the password against the verifier", async () => {
    const password = composeSecrets().PGRAG_APP_PASSWORD ?? "";
    const verifier = scramVerifier(password);
    expect(await scramLogin(password, verifier)).toBe(true);
    expect(await scramLogin(`${password}x`, verifier)).toBe(false);
  });
});

/**
 * One SCRAM-SHA-256 exchange (RFC 5802 §3) between pg's client with `password` and a server holding
 * `verifier`: the server recovers ClientKey from the proof and checks its hash against StoredKey; the
 * client then checks the server's signature made with ServerKey.
 */
async function scramLogin(password: string, verifier: string): Promise<boolean> {
  const [, iterations, salt, storedKey = "", serverKey = ""] =
    /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier) ?? [];
  const session = sasl.startSession(["SCRAM-SHA-256"]);
  const serverFirst = `r=${session.clientNonce}server,s=${salt},i=${iterations}`;
  await sasl.continueSession(session, password, serverFirst);
  const [, finalWithoutProof = "", proof = ""] = /^(.*),p=([^,]+)$/.exec(session.response) ?? [];
  const authMessage = `n=*,r=${session.clientNonce},${serverFirst},${finalWithoutProof}`;
  const hmac = (key: string) => createHmac("sha256", Buffer.from(key, "base64")).update(authMessage).digest();
  const clientSignature = hmac(storedKey);
  const clientKey = Buffer.from(Buffer.from(proof, "base64").map((byte, i) => byte ^ (clientSignature[i] ?? 0)));
  if (createHash("sha256").update(clientKey).digest("base64") !== storedKey) return false;
  sasl.finalizeSession(session, `v=${hmac(serverKey).toString("base64")}`);
  return true;
}
