import { type ConfigVariable, configReference } from "../config.ts";

/** The configuration reference as a Markdown table: `pgrag config` prints it, the README holds it. */
export function configTable(variables: readonly ConfigVariable[] = configReference()): string {
  const rows = variables.map((v) => `| \`${v.name}\` | ${v.default} | ${v.description} |`);
  return ["| variable | default | meaning |", "| --- | --- | --- |", ...rows].join("\n");
}

/** `pgrag config`: every variable with its default and meaning. */
export function runConfig(): void {
  process.stdout.write(`${configTable()}\n`);
}
