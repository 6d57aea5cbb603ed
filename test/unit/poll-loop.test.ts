import { describe, expect, it } from "vitest";
import { PollLoop } from "../../src/jobs/poll-loop.ts";
import { createLogger } from "../../src/logger.ts";

const HOUR = 3_600_000;

/** A logger that keeps its lines. */
function recordingLogger() {
  const lines: { level: string; msg: string; ids?: unknown }[] = [];
  const logger = createLogger({ logLevel: "silent" });
  const record = (level: string) => (fields: object, msg: string) => {
    lines.push({ level, msg, ...(fields as { ids?: unknown }) });
  };
  return { lines, logger: Object.assign(Object.create(logger), { warn: record("warn"), error: record("error") }) };
}

/** Resolves once `condition` holds, re-checking on every turn of the event loop. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe("the poll loop", () => {
  it("fetches again at once after a full batch, waits after a short one, and wake() ends the wait", async () => {
    const batches = [[1, 2], [3, 4], [5]];
    const ran: number[][] = [];
    let fetches = 0;
    const { logger } = recordingLogger();
    const loop = new PollLoop<number>({
      name: "test",
      intervalMs: HOUR,
      fullBatch: 2,
      logger,
      fetch: async () => {
        fetches++;
        return batches.shift() ?? [];
      },
      run: async (work) => {
        ran.push([...work]);
      },
      idsOf: (work) => work.map(String),
    });
    expect(loop.state).toBe("created");
    loop.start();
    expect(loop.state).toBe("active");
    // Two full batches, then a short one: three fetches, then an hour's wait that nothing else ends.
    await until(() => ran.length === 3);
    expect(fetches).toBe(3);
    loop.wake();
    await until(() => fetches === 4);
    await loop.stop();
    expect(loop.state).toBe("stopped");
    expect(ran).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("stop() cuts the wait short and awaits the run in progress, however often it is called", async () => {
    let release: (() => void) | undefined;
    let finished = false;
    const { logger } = recordingLogger();
    const loop = new PollLoop<string>({
      name: "test",
      intervalMs: HOUR,
      fullBatch: 10,
      logger,
      fetch: async () => (finished ? [] : ["job"]),
      run: () =>
        new Promise<void>((resolve) => {
          release = () => {
            finished = true;
            resolve();
          };
        }),
      idsOf: (work) => work,
    });
    loop.start();
    await until(() => release !== undefined);
    const stopping = loop.stop();
    expect(loop.stopping).toBe(true);
    // A second stop waits for the same run.
    const again = loop.stop();
    let stopped = 0;
    for (const stop of [stopping, again]) void stop.then(() => stopped++);
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(0);
    release?.();
    await Promise.all([stopping, again]);
    expect(finished).toBe(true);
    expect(loop.state).toBe("stopped");
  });

  it("logs a failed fetch and a failed run with the work's ids, and goes on", async () => {
    const { lines, logger } = recordingLogger();
    const steps = ["fetch fails", "run fails", "fine"];
    const ran: string[] = [];
    const loop = new PollLoop<string>({
      name: "test",
      intervalMs: HOUR,
      fullBatch: 1,
      logger,
      fetch: async () => {
        const step = steps.shift();
        if (step === "fetch fails") throw new Error("database went away");
        return step ? [step] : [];
      },
      run: async ([step]) => {
        if (step === "run fails") throw new Error("backend down");
        ran.push(step ?? "");
      },
      idsOf: (work) => work.map((step) => `id of ${step}`),
    });
    loop.start();
    // The failed fetch waits out its interval: wake the loop past it.
    await until(() => lines.length === 1);
    loop.wake();
    await until(() => ran.length === 1);
    await loop.stop();
    expect(ran).toEqual(["fine"]);
    expect(lines.map((l) => [l.level, l.msg, l.ids])).toEqual([
      ["warn", "test: fetching work failed; trying again", undefined],
      ["error", "test: work failed; it runs again after its lease", ["id of run fails"]],
    ]);
  });
});
