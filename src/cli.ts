// The pgrag command line: a dispatcher; each command lives in src/cli/<name>.command.ts.
import { ConfigError } from "./config.ts";
import { AppError } from "./errors.ts";
import { runAsk } from "./cli/ask.command.ts";
import { runCollections } from "./cli/collections.command.ts";
import { runConversations } from "./cli/conversations.command.ts";
import { runComposeSecrets } from "./cli/compose-secrets.command.ts";
import { runConfig } from "./cli/config.command.ts";
import { runDevInference } from "./cli/dev-inference.command.ts";
import { runEval } from "./cli/eval.command.ts";
import { runImport } from "./cli/import.command.ts";
import { runIngest } from "./cli/ingest.command.ts";
import { runKeys } from "./cli/keys.command.ts";
import { runMigrate } from "./cli/migrate.command.ts";
import { runQuotas } from "./cli/quotas.command.ts";
import { runSearch } from "./cli/search.command.ts";
import { serve } from "./cli/serve.command.ts";
import { USAGE, UsageError } from "./cli/usage.ts";

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (command) {
    case "serve":
      return serve(true);
    case "worker":
      return serve(false);
    case "keys":
      return runKeys(rest);
    case "quotas":
      return runQuotas(rest);
    case "ingest":
      return runIngest(rest);
    case "import":
      return runImport(rest);
    case "ask":
      return runAsk(rest);
    case "search":
      return runSearch(rest);
    case "collections":
      return runCollections(rest);
    case "conversations":
      return runConversations(rest);
    case "eval":
      return runEval(rest);
    case "dev-inference":
      return runDevInference(rest);
    case "migrate":
      return runMigrate(rest);
    case "config":
      return runConfig();
    case "compose-secrets":
      return runComposeSecrets(rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`pgrag: ${error.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (error instanceof AppError) {
    process.stderr.write(`pgrag: ${error.message}\n`);
    process.exitCode = 1;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`pgrag: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`pgrag: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
