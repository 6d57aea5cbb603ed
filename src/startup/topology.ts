import type { Config } from "../config.ts";
import { NodeMonitor } from "../db/node-monitor.ts";
import { closeDbNode, createDbNode, type DbNode } from "../db/pools.ts";
import { Router } from "../db/router.ts";
import type { Logger } from "../logger.ts";
import type { Registry } from "../metrics.ts";
import type { Tracing } from "../tracing.ts";

export interface Topology {
  readonly primary: DbNode;
  readonly monitor: NodeMonitor;
  readonly router: Router;
  /** Closes every node's pools. */
  close(): Promise<void>;
}

/** The primary and the replicas, the monitor that probes them, and the router that picks one per statement. */
export function createTopology(config: Config, logger: Logger, registry: Registry, tracing: Tracing): Topology {
  const poolOptions = {
    size: config.database.poolSize,
    applicationName: "pgrag",
    tracing,
    ...(config.database.embedded ? { connectionWaitMs: config.routing.monitor.probeTimeoutMs } : {}),
  };
  const primary = createDbNode("primary", "primary", config.database.primaryUrl, poolOptions);
  const replicas = config.database.replicaUrls.map((url, i) =>
    createDbNode(replicaName(url, i), "replica", url, poolOptions),
  );
  const nodes: DbNode[] = [primary, ...replicas];
  const monitor = new NodeMonitor(nodes, config.routing.monitor, logger.child({ component: "node-monitor" }), registry);
  const router = new Router(
    { primary, replicas },
    monitor,
    config.routing.router,
    logger.child({ component: "router" }),
    registry,
    tracing,
  );
  return { primary, monitor, router, close: async () => void (await Promise.all(nodes.map(closeDbNode))) };
}

/** Names a replica after its PgBouncer database ("replica1"), else by position. */
function replicaName(url: string, index: number): string {
  const database = new URL(url).pathname.replace(/^\//, "");
  return /^[A-Za-z0-9_-]{1,63}$/.test(database) && database !== "primary" ? database : `replica${index + 1}`;
}
