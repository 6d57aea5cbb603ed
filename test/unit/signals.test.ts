import { afterEach, describe, expect, it, vi } from "vitest";
import { untilSignal } from "../../src/cli/signals.ts";

const logger = { info: vi.fn(), error: vi.fn() };

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  process.removeAllListeners("SIGTERM");
  process.removeAllListeners("SIGINT");
});

describe("stopping on a signal", () => {
  it("resolves at the first signal, and exits if shutdown is still running at the deadline", async () => {
    vi.useFakeTimers();
    const exit = vi.spyOn(process, "exit").mockImplementation(() => undefined as never);
    const stopped = untilSignal(logger, 20_000);
    process.emit("SIGTERM", "SIGTERM");
    await stopped;
    vi.advanceTimersByTime(19_999);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(exit).toHaveBeenCalledWith(1);
  });

  it("exits at once on a second signal", async () => {
    const exit = vi.spyOn(process, "exit").mockImplementation(() => undefined as never);
    const stopped = untilSignal(logger, 60_000);
    process.emit("SIGINT", "SIGINT");
    await stopped;
    expect(exit).not.toHaveBeenCalled();
    process.emit("SIGTERM", "SIGTERM");
    expect(exit).toHaveBeenCalledWith(1);
    expect(logger.error).toHaveBeenCalledWith({ reason: "a second SIGTERM" }, "shutdown did not finish: exiting");
  });
});
