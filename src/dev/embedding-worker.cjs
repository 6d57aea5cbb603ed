// Entry of the dev backend's embedding thread (CommonJS: see load-typescript.cjs). A GPU host embeds
// on another machine; here the hashing runs off the event loop, so the API beside it stays responsive.
const { pathToFileURL } = require("node:url");
const { move } = require("piscina");
const loadTypeScript = require("../threads/load-typescript.cjs");

const embedding = loadTypeScript(new URL("./hash-embedding.ts", pathToFileURL(__filename)).href);

/** The texts' vectors, one after another in one Float32Array, handed back without a copy. */
module.exports = async function run({ texts, dimension }) {
  const { hashEmbeddings } = await embedding;
  return move(hashEmbeddings(texts, dimension));
};
