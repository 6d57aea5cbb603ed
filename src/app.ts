import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { AppEnv } from "./api/context.ts";
import { createHttpApp } from "./api/http-app.ts";
import type { Config } from "./config.ts";
import { assertEmbeddingSettings } from "./db/embedding-settings.ts";
import { NodeMonitor } from "./db/node-monitor.ts";
import { closeDbNode, createDbNode, type DbNode } from "./db/pools.ts";
import { Router } from "./db/router.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetricsRegistry, type Registry } from "./metrics.ts";

export interface App {
  readonly config: Config;
  readonly http: Hono<AppEnv>;
  readonly router: Router;
  readonly monitor: NodeMonitor;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Checks the database, starts background loops and (unless `listen: false`) the HTTP server. */
  start(options?: { listen?: boolean }): Promise<void>;
  /** The bound port after `start()`, for tests that listen on port 0. */
  port(): number;
  /** Closes the HTTP server, then background loops, then the pools. Safe to call twice. */
  stop(): Promise<void>;
}

/** The composition root: tests, the CLI and `main` all build the platform through it. */
export function createApp(config: Config, options: { logger?: Logger } = {}): App {
  const logger = options.logger ?? createLogger(config);
  const registry = createMetricsRegistry();
  const poolOptions = { size: config.database.poolSize, applicationName: "pgrag" };
  const primary = createDbNode("primary", "primary", config.database.primaryUrl, poolOptions);
  const replicas = config.database.replicaUrls.map((url, i) =>
    createDbNode(replicaName(url, i), "replica", url, poolOptions),
  );
  const nodes: DbNode[] = [primary, ...replicas];
  const monitor = new NodeMonitor(
    nodes,
    {
      intervalMs: config.routing.monitorIntervalMs,
      maxReplicaLagMs: config.routing.maxReplicaLagMs,
      maxBackoffMs: config.routing.breakerMaxBackoffMs,
      probeTimeoutMs: config.routing.probeTimeoutMs,
    },
    logger.child({ component: "node-monitor" }),
    registry,
  );
  const router = new Router(
    { primary, replicas },
    monitor,
    {
      consistencyWaitMs: config.routing.consistencyWaitMs,
      readFallbackToPrimary: config.routing.readFallbackToPrimary,
    },
    logger.child({ component: "router" }),
    registry,
  );
  const http = createHttpApp({ logger, monitor, registry });

  let server: ServerType | undefined;
  let stopping: Promise<void> | undefined;

  return {
    config,
    http,
    router,
    monitor,
    registry,
    logger,
    async start({ listen = true } = {}) {
      await assertEmbeddingSettings(primary.db, config.embedding);
      await monitor.probeAll(true);
      monitor.start();
      if (!listen) return;
      await new Promise<void>((resolve, reject) => {
        server = serve({ fetch: http.fetch, hostname: config.http.host, port: config.http.port }, () =>
          resolve(),
        );
        server.once("error", reject);
      });
      logger.info({ host: config.http.host, port: this.port() }, "pgrag listening");
    },
    port() {
      const address = server?.address() as AddressInfo | null | undefined;
      if (!address) throw new Error("the HTTP server is not listening");
      return address.port;
    },
    stop() {
      stopping ??= (async () => {
        if (server) {
          const closing = new Promise<void>((resolve) => server?.close(() => resolve()));
          // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
          (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
          await closing;
        }
        await monitor.stop();
        await Promise.all(nodes.map(closeDbNode));
      })();
      return stopping;
    },
  };
}

/** Names a replica after its PgBouncer database ("replica1"), else by position. */
function replicaName(url: string, index: number): string {
  const database = new URL(url).pathname.replace(/^\//, "");
  return /^[A-Za-z0-9_-]{1,63}$/.test(database) && database !== "primary" ? database : `replica${index + 1}`;
}
