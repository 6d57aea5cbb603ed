/**
 * Where the suite's database topology runs. Where a Docker engine answers, the topology of
 * docker-compose.yml (primary, two streaming replicas, PgBouncer) runs in containers through
 * testcontainers; elsewhere — as here and on CI, where no engine runs — the native one of
 * replicas/cluster.sh. PGRAG_TEST_TOPOLOGY=native|containers forces one; auto is the default.
 *
 * Both publish the same ports and write the same env file, so a test does not care which runs; the
 * few node operations (stop, start, restart PgBouncer, superuser queries) go through this module.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GenericContainer, getContainerRuntimeClient, Network, Wait } from "testcontainers";
import { parse } from "yaml";

type HealthCheck = Parameters<GenericContainer["withHealthCheck"]>[0];

export type TopologyKind = "native" | "containers";

export interface TopologyPorts {
  readonly dir: string;
  readonly pgPort: number;
  readonly bouncerPort: number;
  readonly replicas: number;
}

/** What global setup records for the test files (other processes) and its own teardown. */
export interface TopologyState {
  readonly kind: TopologyKind;
  /** Container ids by compose service name (containers only). */
  readonly containers?: Record<string, string>;
  readonly networkId?: string;
  /** The `postgres` superuser's password for TCP connections to a node (containers only). */
  readonly superuserPassword?: string;
}

export async function dockerReachable(): Promise<boolean> {
  try {
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function selectTopology(
  requested: string | undefined,
  reachable: () => Promise<boolean>,
): Promise<TopologyKind> {
  switch (requested || "auto") {
    case "native":
      return "native";
    case "containers":
      if (!(await reachable())) {
        throw new Error(
          "PGRAG_TEST_TOPOLOGY=containers, but testcontainers found no reachable Docker engine; " +
            "start one (or set DOCKER_HOST), or unset PGRAG_TEST_TOPOLOGY to use the native topology",
        );
      }
      return "containers";
    case "auto":
      return (await reachable()) ? "containers" : "native";
    default:
      throw new Error(`PGRAG_TEST_TOPOLOGY must be auto, native or containers, not "${requested}"`);
  }
}

const stateFile = (ports: TopologyPorts) => join(ports.dir, "topology.json");

export function writeTopologyState(ports: TopologyPorts, state: TopologyState): void {
  mkdirSync(ports.dir, { recursive: true });
  writeFileSync(stateFile(ports), JSON.stringify(state), { mode: 0o600 });
}

/** The running topology; a run whose global setup predates this file was native. */
export function readTopologyState(ports: TopologyPorts): TopologyState {
  try {
    return JSON.parse(readFileSync(stateFile(ports), "utf8")) as TopologyState;
  } catch {
    return { kind: "native" };
  }
}

export interface ContainerNodeSpec {
  /** The compose service's name, also its host name on the topology's network. */
  readonly service: string;
  readonly image: string;
  readonly environment: Record<string, string>;
  readonly command?: string[];
  readonly entrypoint?: string[];
  readonly user?: string;
  readonly files: { source: string; target: string; mode: number }[];
  readonly containerPort: number;
  readonly hostPort: number;
  readonly healthCheck: HealthCheck;
}

export interface ContainerTopologySpec {
  /** In start order: the primary, its replicas, then PgBouncer. */
  readonly nodes: ContainerNodeSpec[];
  /** The env file's variables, as replicas/cluster.sh writes them for the native topology. */
  readonly env: Record<string, string>;
  readonly superuserPassword: string;
}

interface ComposeService {
  image?: string;
  environment?: Record<string, string | number>;
  command?: string | string[];
  entrypoint?: string[];
  user?: string;
  volumes?: string[];
  healthcheck?: { test: HealthCheck["test"]; interval?: string; timeout?: string; retries?: number };
}

/** Compose durations as used in our file ("5s", "500ms", "1m") in milliseconds. */
function durationMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)(ms|s|m)$/.exec(value);
  if (!match) throw new Error(`docker-compose.yml: unsupported duration "${value}"`);
  return Number(match[1]) * { ms: 1, s: 1_000, m: 60_000 }[match[2] as "ms" | "s" | "m"];
}

/**
 * Compose's variable interpolation on the file's text, as `docker compose` does it with `env` set:
 * ${VAR}, ${VAR:-default}, and ${VAR:?message}, which fails with the message when VAR is unset.
 */
export function interpolateCompose(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_, name: string, kind?: string, word = "") => {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
    if (kind === "?") throw new Error(`docker-compose.yml: required variable ${name} is missing: ${word}`);
    return kind === "-" ? word : "";
  });
}

/**
 * The container topology, read from docker-compose.yml so that tests run exactly the images,
 * commands, entrypoints, init scripts and PgBouncer configuration that compose users run — only
 * with the test ports published, no volumes (each run starts empty), and `secrets` (from
 * `pgrag compose-secrets`) where compose users have their .env.
 */
export function containerTopologySpec(
  composeText: string,
  root: string,
  ports: TopologyPorts,
  secrets: Readonly<Record<string, string>>,
): ContainerTopologySpec {
  const { services } = parse(interpolateCompose(composeText, secrets), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const bouncerIni = readFileSync(join(root, "replicas/docker/pgbouncer.ini"), "utf8");
  const bouncerListenPort = Number(/^listen_port = (\d+)/m.exec(bouncerIni)?.[1]);
  const replicaNames = Array.from({ length: ports.replicas }, (_, i) => `replica${i + 1}`);
  const node = (name: string, containerPort: number, hostPort: number): ContainerNodeSpec => {
    const service = services[name];
    if (!service?.image || !service.healthcheck) {
      throw new Error(`docker-compose.yml: service ${name} needs an image and a health check`);
    }
    return {
      service: name,
      image: service.image,
      environment: Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)])),
      command: typeof service.command === "string" ? service.command.trim().split(/\s+/) : service.command,
      entrypoint: service.entrypoint,
      user: service.user,
      // Bind-mounted files are copied in; named volumes are left out so that every run starts empty.
      files: (service.volumes ?? [])
        .filter((volume) => volume.startsWith("./"))
        .map((volume) => {
          const [source = "", target = ""] = volume.split(":");
          return { source: join(root, source), target, mode: source.endsWith(".sh") ? 0o755 : 0o644 };
        }),
      containerPort,
      hostPort,
      healthCheck: {
        test: service.healthcheck.test,
        interval: durationMs(service.healthcheck.interval),
        timeout: durationMs(service.healthcheck.timeout),
        retries: service.healthcheck.retries,
      },
    };
  };
  const nodes = [
    node("primary", 5432, ports.pgPort),
    ...replicaNames.map((name, i) => node(name, 5432, ports.pgPort + i + 1)),
    node("pgbouncer", bouncerListenPort, ports.bouncerPort),
  ];
  const pgEnv = nodes[0]?.environment ?? {};
  const appEnv = services.api?.environment ?? {};
  // The app's URLs name compose's services; from the host they are the published test ports.
  const fromHost = (url: string | number | undefined) =>
    String(url ?? "")
      .replaceAll(`@pgbouncer:${bouncerListenPort}/`, `@127.0.0.1:${ports.bouncerPort}/`)
      .replaceAll("@primary:5432/", `@127.0.0.1:${ports.pgPort}/`);
  return {
    nodes,
    env: {
      PGRAG_PRIMARY_URL: fromHost(appEnv.PGRAG_PRIMARY_URL),
      PGRAG_REPLICA_URLS: fromHost(appEnv.PGRAG_REPLICA_URLS),
      PGRAG_MIGRATION_URL: fromHost(services.migrate?.environment?.PGRAG_MIGRATION_URL),
      PGRAG_ANALYST_URL: `postgres://pgrag_analyst:${secrets.PGRAG_ANALYST_PASSWORD ?? ""}@127.0.0.1:${ports.bouncerPort}/analytics`,
      PGRAG_CLUSTER_DIR: ports.dir,
    },
    superuserPassword: pgEnv.POSTGRES_PASSWORD ?? "",
  };
}

/** Starts the container topology and writes the env file the native topology would have written. */
export async function startContainerTopology(
  spec: ContainerTopologySpec,
  ports: TopologyPorts,
  envFile: string,
): Promise<TopologyState> {
  const network = await new Network().start();
  const containers: Record<string, string> = {};
  for (const node of spec.nodes) {
    let container = new GenericContainer(node.image)
      .withNetwork(network)
      .withNetworkAliases(node.service)
      .withEnvironment(node.environment)
      .withCopyFilesToContainer(node.files)
      // The native topology's ports, so that stopping and starting a node keeps its address.
      .withExposedPorts({ container: node.containerPort, host: node.hostPort })
      .withHealthCheck(node.healthCheck)
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(180_000);
    if (node.command) container = container.withCommand(node.command);
    if (node.entrypoint) container = container.withEntrypoint(node.entrypoint);
    if (node.user) container = container.withUser(node.user);
    containers[node.service] = (await container.start()).getId();
  }
  mkdirSync(ports.dir, { recursive: true });
  writeFileSync(
    envFile,
    `# Written by test/helpers/topology.ts for the container topology.\n${Object.entries(spec.env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
    { mode: 0o600 },
  );
  return { kind: "containers", containers, networkId: network.getId(), superuserPassword: spec.superuserPassword };
}

export async function stopContainerTopology(state: TopologyState): Promise<void> {
  const client = await getContainerRuntimeClient();
  for (const id of Object.values(state.containers ?? {}).reverse()) {
    await client.container.remove(client.container.getById(id), { removeVolumes: true }).catch(() => undefined);
  }
  if (state.networkId)
    await client.network
      .getById(state.networkId)
      .remove()
      .catch(() => undefined);
}

/** replicas/cluster.sh's node commands, on the container topology. */
export async function containerNodeCommand(state: TopologyState, command: string, node = "pgbouncer"): Promise<void> {
  const client = await getContainerRuntimeClient();
  const id = state.containers?.[node];
  if (!id) throw new Error(`no container for node ${node}`);
  const container = client.container.getById(id);
  const running = async () => (await client.container.inspect(container)).State.Running;
  switch (command) {
    case "stop-node":
      if (await running()) await client.container.stop(container, { timeout: 10 });
      return;
    case "start-node":
      if (!(await running())) await client.container.start(container);
      break;
    case "restart-pgbouncer":
      await client.container.restart(container, { timeout: 10 });
      break;
    default:
      throw new Error(`the container topology has no "${command}" command`);
  }
  const deadline = Date.now() + 120_000;
  while ((await client.container.inspect(container)).State.Health?.Status !== "healthy") {
    if (Date.now() > deadline) throw new Error(`${node} did not become healthy after ${command}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
