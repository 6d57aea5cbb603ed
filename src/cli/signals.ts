/** Resolves at the first SIGINT or SIGTERM: the long-running commands stop gracefully then. */
export function untilSignal(logger: { info(obj: object, msg: string): void }): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        logger.info({ signal }, "shutting down");
        resolve();
      });
    }
  });
}
