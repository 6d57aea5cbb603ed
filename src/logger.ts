import { type DestinationStream, type Logger, pino } from "pino";
import type { Config } from "./config.ts";
import { traceIds } from "./tracing.ts";

export type { Logger };

/**
 * Structured JSON logs for machines; in a terminal (`logFormat: "auto"` and stderr a TTY) the same
 * records as readable lines through pino-pretty. Logs go to stderr: stdout carries what a command
 * prints as its result (an answer, a key, a list), so `2>/dev/null` leaves just that.
 */
export function createLogger(
  config: Pick<Config, "logLevel"> & { logFormat?: Config["logFormat"] },
  destination: DestinationStream = pino.destination(2),
): Logger {
  const format = config.logFormat ?? "json";
  const pretty = format === "pretty" || (format === "auto" && process.stderr.isTTY === true);
  const options = {
    level: config.logLevel,
    base: { service: "pgrag" },
    // Connection URLs carry passwords; never let one reach a log line.
    redact: { paths: ["*.password", "*.url", "*.connectionString"], censor: "[redacted]" },
    // A line logged inside a traced request or job names its trace and span, to find one from the other.
    mixin: traceIds,
    ...(pretty
      ? {
          transport: {
            target: "pino-pretty",
            options: {
              colorize: true,
              translateTime: "SYS:HH:MM:ss",
              ignore: "pid,hostname,service",
              destination: 2,
            },
          },
        }
      : {}),
  };
  return pretty ? pino(options) : pino(options, destination);
}
