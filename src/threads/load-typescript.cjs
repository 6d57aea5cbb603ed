// Loads a TypeScript module into a worker thread, for the threads' entries (themselves CommonJS on
// purpose: piscina require()s a thread's entry first, and on Node 20.19+ require() of an ES module
// links and runs it synchronously — a thread terminated inside that window, as when a pool is closed
// while its threads start, aborts the whole process in V8 ("Module::IsGraphAsync must be used on an
// instantiated module", seen in a test run). Everything here is loaded by import(), which is
// asynchronous: a thread terminated during it just ends.)
// pgrag runs TypeScript through tsx's loader (bin/pgrag.js); a worker thread starts without it, so
// the loader is registered (tsx's ES module API: its CommonJS build does not find its own hooks)
// before the module is imported.

/** The module at `url` (absolute), loaded once; a failed load is reported to whoever awaits it. */
module.exports = function loadTypeScript(url) {
  const loaded = import("tsx/esm/api").then(({ register }) => {
    register();
    return import(url);
  });
  // Not an unhandled rejection: the first task that needs the module reports the failure.
  loaded.catch(() => {});
  return loaded;
};
