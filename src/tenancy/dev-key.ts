import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Kysely } from "kysely";
import type { Database } from "../db/database.ts";
import { createApiKey, ensureTenant, findActiveKey } from "./api-keys.ts";

/**
 * The embedded (try-it) mode's API key for tenant "default": created on first start, kept in the data
 * folder (mode 0600) and shown at every start, so the console and curl work at once.
 */
export async function ensureDevApiKey(db: Kysely<Database>, dataDir: string): Promise<string> {
  const file = join(dataDir, "..", "dev-api-key");
  if (existsSync(file)) {
    const saved = readFileSync(file, "utf8").trim();
    if (await findActiveKey(db, saved)) return saved;
  }
  const tenantId = await ensureTenant(db, "default");
  const { key } = await createApiKey(db, { tenantId, name: "embedded dev key", scopes: ["read", "write", "admin"] });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}
