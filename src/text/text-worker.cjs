// Entry of a text-pool thread (CommonJS: see load-typescript.cjs). The pool names the module of
// tasks its threads run (workerData.tasks): text work, or file parsing, whose libraries are large.
const { workerData } = require("node:worker_threads");
const loadTypeScript = require("../threads/load-typescript.cjs");

const tasks = loadTypeScript(workerData.tasks);

/** Says when the task starts (its time budget runs from then, not from when it was queued). */
module.exports = async function run({ task, started }) {
  const { runTask } = await tasks;
  started.postMessage("started");
  started.close();
  return runTask(task);
};
