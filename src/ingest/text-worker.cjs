// Entry of a text-pool thread, in CommonJS on purpose: piscina require()s a thread's entry first,
// and on Node 20.19+ require() of an ES module (the entry was one) links and runs it synchronously —
// a thread terminated inside that window, as when a pool is closed while its threads start, aborts
// the whole process in V8 ("Module::IsGraphAsync must be used on an instantiated module", seen in a
// test run). Everything here is loaded by import(), which is asynchronous: a thread terminated
// during it just ends.
// pgrag runs TypeScript through tsx's loader (bin/pgrag.js); a worker thread starts without it, so it
// registers the loader (tsx's ES module API: its CommonJS build does not find its own hooks) before
// importing the tasks.
const tasks = import("tsx/esm/api").then(({ register }) => {
  register();
  return import("./text-tasks.ts");
});
// A failed import is reported by the first task that needs it, not as an unhandled rejection.
tasks.catch(() => {});

/** Says when the task starts (its time budget runs from then, not from when it was queued). */
module.exports = async function run({ task, started }) {
  const { runTextTask } = await tasks;
  started.postMessage("started");
  started.close();
  return runTextTask(task);
};
