// `npm run docs:config`: writes the README's configuration table from the config schema, between
// its markers (a unit test fails while they differ).
import { readFileSync, writeFileSync } from "node:fs";
import { configTable } from "../src/cli/config.command.ts";

const START = "<!-- config-table:start (npm run docs:config) -->";
const END = "<!-- config-table:end -->";
const path = new URL("../README.md", import.meta.url);
const readme = readFileSync(path, "utf8");
const from = readme.indexOf(START);
const to = readme.indexOf(END);
if (from < 0 || to < from) throw new Error(`README.md needs the markers ${START} and ${END}`);
writeFileSync(path, `${readme.slice(0, from + START.length)}\n${configTable()}\n${readme.slice(to)}`);
