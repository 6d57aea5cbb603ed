/**
 * Resolves at the first SIGINT or SIGTERM: the long-running commands stop gracefully then. From that
 * signal on, the process exits by itself `deadlineMs` later if it is still running (graceful shutdown
 * has its own, shorter deadline; this one covers a shutdown that hangs), and at once on a second signal.
 */
export function untilSignal(
  logger: { info(obj: object, msg: string): void; error(obj: object, msg: string): void },
  deadlineMs: number,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "shutting down");
      for (const s of SIGNALS) process.removeListener(s, first);
      const forced = (reason: string) => () => {
        logger.error({ reason }, "shutdown did not finish: exiting");
        process.exit(1);
      };
      setTimeout(forced(`still running ${deadlineMs} ms after ${signal}`), deadlineMs).unref();
      for (const s of SIGNALS) process.once(s, forced(`a second ${s}`));
      resolve();
    };
    for (const s of SIGNALS) process.on(s, first);
  });
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
