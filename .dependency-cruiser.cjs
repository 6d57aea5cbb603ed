/**
 * The layering, enforced (`npm run lint:deps`, part of `npm test`): `api` → capabilities → `db`,
 * one composition root that only the entry points import, and no folder using another's data
 * access (`*.repository.ts`) directly.
 */
const capabilities = "(analytics|chat|evaluation|inference|ingest|retrieval|tenancy|text)";

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "Modules form a one-way graph.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "app-only-from-entry-points",
      comment: "Only the entry points (the CLI) build the platform through the composition root.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(cli\\.ts|cli/)" },
      to: { path: "^src/app\\.ts$" },
    },
    {
      name: "nothing-imports-api",
      comment: "The HTTP layer is the top: only the composition root wires it.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(app\\.ts|api/)" },
      to: { path: "^src/api/" },
    },
    {
      name: "nothing-imports-cli",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/(cli\\.ts|cli/)" },
      to: { path: "^src/(cli\\.ts|cli/)" },
    },
    {
      name: "db-is-the-bottom",
      comment: "The database layer knows no capability above it.",
      severity: "error",
      from: { path: "^src/db/" },
      to: { path: `^src/(api|cli|app\\.ts|cli\\.ts|${capabilities}/)` },
    },
    {
      name: "chat-does-not-import-ingest",
      comment: "Answering questions must not depend on how documents are written.",
      severity: "error",
      from: { path: "^src/chat/" },
      to: { path: "^src/ingest/" },
    },
    {
      name: "no-reaching-into-data-access",
      comment: "A folder's SQL is its own: other folders go through its services or exported types.",
      severity: "error",
      from: { path: "^src/([^/]+)/" },
      to: { path: "^src/[^/]+/[^/]+\\.repository\\.ts$", pathNot: "^src/$1/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "sql-lives-in-repositories",
      comment: "One home for SQL: data access files end in .repository.ts (no .sql.ts twins).",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "\\.sql\\.ts$" },
    },
    {
      name: "src-does-not-import-tests-or-benches",
      severity: "error",
      from: { path: "^(src|bench|loadtest)/" },
      to: { path: "^test/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
