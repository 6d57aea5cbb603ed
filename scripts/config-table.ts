// `npm run docs:config`: writes the configuration table of docs/configuration.md from the config
// schema, between its markers (a unit test fails while they differ).
import { readFileSync, writeFileSync } from "node:fs";
import { configTable } from "../src/cli/config.command.ts";

const START = "<!-- config-table:start (npm run docs:config) -->";
const END = "<!-- config-table:end -->";
const path = new URL("../docs/configuration.md", import.meta.url);
const page = readFileSync(path, "utf8");
const from = page.indexOf(START);
const to = page.indexOf(END);
if (from < 0 || to < from) throw new Error(`docs/configuration.md needs the markers ${START} and ${END}`);
writeFileSync(path, `${page.slice(0, from + START.length)}\n${configTable()}\n${page.slice(to)}`);
