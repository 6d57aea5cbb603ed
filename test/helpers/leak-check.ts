import { beforeEach, expect, onTestFinished } from "vitest";
import { runningApps } from "./app.ts";

/** Handles that outlive a test only when it forgot them: listening servers and child processes. */
const LEAKABLE_HANDLES = ["TCPServerWrap", "PipeServerWrap", "ProcessWrap"];

/**
 * Fails a test that leaves something running into the next one: an app (its workers would take the
 * next test's jobs), a listening server, a child process, or faults injected into a dev backend.
 * Registered before anything the test registers, it runs after the test's own cleanup
 * (onTestFinished hooks run last registered first).
 */
beforeEach(() => {
  const apps = new Set(runningApps);
  const faults = new Map([...apps].map((app) => [app, JSON.stringify(app.devInference()?.faults)]));
  const handles = leakableHandles();
  onTestFinished(async () => {
    const appsLeft = [...runningApps].filter((app) => !apps.has(app)).length;
    const faultsLeft = [...apps].filter(
      (app) => runningApps.has(app) && JSON.stringify(app.devInference()?.faults) !== faults.get(app),
    ).length;
    const handlesLeft = await untilNoneLeft(() => excess(leakableHandles(), handles));
    expect({ appsLeft, faultsLeft, handlesLeft }, "left running by this test").toEqual({
      appsLeft: 0,
      faultsLeft: 0,
      handlesLeft: {},
    });
  });
});

function leakableHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (LEAKABLE_HANDLES.includes(kind)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

function excess(now: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const more: Record<string, number> = {};
  for (const [kind, count] of now) if (count > (before.get(kind) ?? 0)) more[kind] = count - (before.get(kind) ?? 0);
  return more;
}

/** A closed server or an exited child releases its handle a few turns of the event loop later. */
async function untilNoneLeft(read: () => Record<string, number>): Promise<Record<string, number>> {
  let left = read();
  for (let attempt = 0; attempt < 100 && Object.keys(left).length > 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = read();
  }
  return left;
}
