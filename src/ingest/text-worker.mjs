// Entry of a text-pool thread. pgrag runs TypeScript through tsx's loader (bin/pgrag.js); a worker
// thread starts without it, so it registers the loader before importing the tasks.
import { register } from "tsx/esm/api";

register();
const { runTextTask } = await import("./text-tasks.ts");

/** Says when the task starts (its time budget runs from then, not from when it was queued). */
export default function run({ task, started }) {
  started.postMessage("started");
  started.close();
  return runTextTask(task);
}
