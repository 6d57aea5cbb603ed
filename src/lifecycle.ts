import type { Logger } from "./logger.ts";

interface Releaser {
  readonly name: string;
  readonly release: (deadline: number) => Promise<unknown>;
  /** Quick and needed (closing pools): awaited even past the deadline. */
  readonly always: boolean;
}

/**
 * What a start-up started, released in reverse order by `releaseAll` within one deadline, so a
 * stop after a half-finished start releases exactly what was started, and a stuck step (a client,
 * a job, a node) cannot hold shutdown open.
 */
export class Releasers {
  readonly #stack: Releaser[] = [];
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Released before everything pushed earlier. `release` gets the deadline, for steps that can use it. */
  push(name: string, release: (deadline: number) => Promise<unknown>, options: { always?: boolean } = {}): void {
    this.#stack.push({ name, release, always: options.always ?? false });
  }

  async releaseAll(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let next = this.#stack.pop(); next; next = this.#stack.pop()) {
      const releasing = next.release(deadline).catch((error: unknown) => {
        this.#logger.error({ err: error, step: next?.name }, "shutdown step failed");
      });
      if (next.always) await releasing;
      else await untilDeadline(next.name, releasing, deadline, this.#logger);
    }
  }
}

/**
 * Waits for `work` until the deadline; true when it finished in time. Past it, the caller moves on
 * (and the log says so) rather than hang.
 */
export async function untilDeadline(
  name: string,
  work: Promise<unknown>,
  deadline: number,
  logger: Logger,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  try {
    const finished = await Promise.race([work.then(() => true as const), expired]);
    if (!finished) logger.warn({ step: name }, "shutdown deadline passed; not waiting for this step");
    return finished;
  } finally {
    clearTimeout(timer);
  }
}
