import { collectDefaultMetrics, Registry } from "prom-client";

/** One registry per app instance, so that tests can build several apps in one process. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "pgrag_process_" });
  return registry;
}

export type { Registry };
