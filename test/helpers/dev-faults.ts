import { onTestFinished } from "vitest";
import type { DevInferenceFaults, DevInferenceServer } from "../../src/dev/dev-server.ts";

/**
 * Makes the dev inference backend misbehave for the current test only: the faults are undone when
 * the test finishes (passed or not), or earlier with `clear()`.
 */
export function injectDevFaults(
  dev: DevInferenceServer | undefined,
  faults: Partial<DevInferenceFaults>,
): { clear(): void } {
  if (!dev) throw new Error("expected the in-process dev inference backend");
  const before = { ...dev.faults };
  Object.assign(dev.faults, faults);
  const clear = () => {
    Object.assign(dev.faults, before);
  };
  onTestFinished(clear);
  return { clear };
}
