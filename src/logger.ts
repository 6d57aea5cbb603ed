import { type Logger, pino } from "pino";
import type { Config } from "./config.ts";

export type { Logger };

export function createLogger(config: Pick<Config, "logLevel">): Logger {
  return pino({
    level: config.logLevel,
    base: { service: "pgrag" },
    // Connection URLs carry passwords; never let one reach a log line.
    redact: { paths: ["*.password", "*.url", "*.connectionString"], censor: "[redacted]" },
  });
}
