/**
 * The layering, enforced (`npm run lint:deps`, part of `npm test`): `api` → capabilities → `db`,
 * one composition root that only the entry points import, and no folder using another's data
 * access (`*.repository.ts`) directly.
 */
const capabilityFolders = [
  "analytics",
  "batch",
  "chat",
  "collections",
  "evaluation",
  "inference",
  "ingest",
  "jobs",
  "postings",
  "retrieval",
  "tenancy",
  "text",
];
const capabilities = `(${capabilityFolders.join("|")})`;

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
      comment:
        "A folder's SQL is its own: other folders go through its services or exported types. Collections " +
        "and postings are the exception: stores whose statements run inside the writers' own transactions.",
      severity: "error",
      from: { path: "^src/([^/]+)/" },
      to: {
        path: "^src/.+\\.repository\\.ts$",
        pathNot: ["^src/$1/", "^src/(collections|postings)/"],
        dependencyTypesNot: ["type-only"],
      },
    },
    {
      name: "shared-stores-are-leaves",
      comment: "Collections and postings are written by ingestion and imports, and know neither.",
      severity: "error",
      from: { path: "^src/(collections|postings)/" },
      to: { path: "^src/(ingest|batch|chat|api)/" },
    },
    {
      name: "text-is-pure",
      comment: "Text processing (chunking, HTML, decoding) knows no database and no capability.",
      severity: "error",
      from: { path: "^src/text/" },
      to: { path: `^src/(db|api|${capabilityFolders.filter((folder) => folder !== "text").join("|")})/` },
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
