// Entry of a text-pool thread (CommonJS: see load-typescript.cjs).
const { pathToFileURL } = require("node:url");
const loadTypeScript = require("../threads/load-typescript.cjs");

const tasks = loadTypeScript(new URL("./text-tasks.ts", pathToFileURL(__filename)).href);

/** Says when the task starts (its time budget runs from then, not from when it was queued). */
module.exports = async function run({ task, started }) {
  const { runTextTask } = await tasks;
  started.postMessage("started");
  started.close();
  return runTextTask(task);
};
