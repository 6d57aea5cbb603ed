import { type ServerType, serve } from "@hono/node-server";
import type { Config } from "../config.ts";
import { type Releasers, untilDeadline } from "../lifecycle.ts";
import type { Logger } from "../logger.ts";

/** Serves `http` on the configured host and port; released by closing it (see closeServer). */
export async function listen(
  http: { fetch: (request: Request) => Response | Promise<Response> },
  config: Config,
  releasers: Releasers,
  logger: Logger,
): Promise<ServerType> {
  const server = await new Promise<ServerType>((resolve, reject) => {
    const created = serve({ fetch: http.fetch, hostname: config.http.host, port: config.http.port }, () =>
      resolve(created),
    );
    created.once("error", reject);
  });
  releasers.push("in-flight HTTP requests", (deadline) => closeServer(server, deadline, logger));
  return server;
}

/** In-flight requests finish until the deadline; answers still streaming then are cut off. */
async function closeServer(server: ServerType, deadline: number, logger: Logger): Promise<void> {
  const closing = new Promise<void>((resolve) => server.close(() => resolve()));
  // Idle keep-alive sockets would hold close() open.
  (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  if (!(await untilDeadline("in-flight HTTP requests", closing, deadline, logger))) {
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    await closing;
  }
}
