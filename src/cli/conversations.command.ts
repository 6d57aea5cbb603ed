import { parseArgs } from "node:util";
import { PRIMARY_ONLY_TOKEN } from "../db/consistency-token.ts";
import { withCliApp } from "./cli-app.ts";

/** `pgrag conversations`: a tenant's conversations, most recently active first. */
export async function runConversations(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { tenant: { type: "string", default: "default" }, limit: { type: "string", default: "20" } },
  });
  const limit = Math.min(100, Math.max(1, Number(values.limit) || 20));
  await withCliApp(values.tenant, async (app, principal) => {
    const found = await app.chat.conversations(principal, { after: null, limit }, PRIMARY_ONLY_TOKEN);
    if (found.length === 0) process.stderr.write(`tenant "${values.tenant}" has no conversations yet\n`);
    for (const c of found) {
      process.stdout.write(`${c.id}\t${c.updatedAt.toISOString()}\t${c.messages} messages\t${c.title ?? ""}\n`);
    }
  });
}
