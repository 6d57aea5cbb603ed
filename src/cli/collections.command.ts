import { parseArgs } from "node:util";
import { PRIMARY_ONLY_TOKEN } from "../db/consistency-token.ts";
import { DEFAULT_CHUNKING } from "../text/chunking.ts";
import { withCliApp } from "./cli-app.ts";
import { UsageError } from "./usage.ts";

/** `pgrag collections [list] | create NAME [--language L] | delete NAME` for a tenant. */
export async function runCollections(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { tenant: { type: "string", default: "default" }, language: { type: "string", default: "english" } },
  });
  const [action = "list", name] = positionals;
  if (action !== "list" && !name) throw new UsageError(`collections ${action} needs the collection's name`);
  if (!["list", "create", "delete"].includes(action)) throw new UsageError("collections takes list, create or delete");
  await withCliApp(values.tenant, async (app, principal) => {
    if (action === "create") {
      await app.ingest.createCollection(principal, {
        name: name ?? "",
        language: values.language,
        chunking: DEFAULT_CHUNKING,
      });
      process.stdout.write(`created collection "${name}" (${values.language})\n`);
    } else if (action === "delete") {
      const { value } = await app.ingest.deleteCollection(principal, name ?? "");
      process.stdout.write(`deleted collection "${name}" and its ${value.documents} document(s)\n`);
    } else {
      const { value } = await app.ingest.listCollections(principal, PRIMARY_ONLY_TOKEN);
      if (value.length === 0) process.stderr.write(`tenant "${values.tenant}" has no collections yet\n`);
      for (const c of value) process.stdout.write(`${c.name}\t${c.language}\t${c.createdAt.toISOString()}\n`);
    }
  });
}
