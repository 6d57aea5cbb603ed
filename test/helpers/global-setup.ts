import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { composeSecrets } from "../../src/cli/compose-secrets.command.ts";
import { loadConfig } from "../../src/config.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createLogger } from "../../src/logger.ts";
import { cluster, TEST_CLUSTER, TEST_ENV_FILE } from "./cluster.ts";
import {
  containerTopologySpec,
  dockerReachable,
  selectTopology,
  startContainerTopology,
  stopContainerTopology,
  type TopologyState,
  writeTopologyState,
} from "./topology.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Brings a fresh topology up once per run — in containers where a Docker engine answers, native
 * otherwise — migrates it, and takes it down at the end.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const kind = await selectTopology(process.env.PGRAG_TEST_TOPOLOGY, dockerReachable);
  console.log(`[test] database topology: ${kind} (PGRAG_TEST_TOPOLOGY=${process.env.PGRAG_TEST_TOPOLOGY || "auto"})`);
  // Whatever an interrupted earlier run left behind.
  writeTopologyState(TEST_CLUSTER, { kind: "native" });
  await cluster("down").catch(() => "");
  await rm(TEST_CLUSTER.dir, { recursive: true, force: true });
  let state: TopologyState = { kind };
  if (kind === "containers") {
    const spec = containerTopologySpec(
      readFileSync(`${root}/docker-compose.yml`, "utf8"),
      root,
      TEST_CLUSTER,
      composeSecrets(),
    );
    state = await startContainerTopology(spec, TEST_CLUSTER, TEST_ENV_FILE);
  } else {
    await cluster("up", "--replicas", String(TEST_CLUSTER.replicas));
  }
  writeTopologyState(TEST_CLUSTER, state);
  // A short analyst statement timeout, so the runaway-query test does not wait half a minute.
  const config = loadConfig({ PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_ANALYST_STATEMENT_TIMEOUT_MS: "3000" });
  await migrate(config, createLogger({ logLevel: "error" }));
  return async () => {
    if (state.kind === "containers") await stopContainerTopology(state);
    else await cluster("down");
  };
}
