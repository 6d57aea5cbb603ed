import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { scramVerifier } from "../db/scram-verifier.ts";
import { UsageError } from "./usage.ts";

/** The roles of the compose topology (variable prefixes); each gets a random password and its verifier. */
const ROLES = ["POSTGRES", "REPLICATOR", "PGRAG_OWNER", "PGRAG_APP", "PGRAG_ANALYST"] as const;

/**
 * The variables docker-compose.yml requires: a password per role (for the services that log in) and
 * its SCRAM verifier (for the primary, which creates the roles with it, and PgBouncer's auth file),
 * and the key the dev inference server asks for.
 */
export function composeSecrets(): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const prefix of ROLES) {
    const password = randomBytes(24).toString("hex");
    secrets[`${prefix}_PASSWORD`] = password;
    secrets[`${prefix}_SCRAM`] = scramVerifier(password);
  }
  secrets.PGRAG_INFERENCE_API_KEY = randomBytes(24).toString("hex");
  return secrets;
}

/** As an env file compose reads; single quotes keep compose from reading a verifier's `$` as a variable. */
function envFile(secrets: Record<string, string>): string {
  const lines = Object.entries(secrets).map(([name, value]) => `${name}='${value}'`);
  return ["# Written by `pgrag compose-secrets` for docker compose; keep it private.", ...lines, ""].join("\n");
}

/** `pgrag compose-secrets [--out FILE]`: fresh secrets for compose, readable by this user only; never overwrites. */
export function runComposeSecrets(args: string[]): void {
  const [flag, file = ".env", ...extra] = args.length === 0 ? ["--out"] : args;
  if (flag !== "--out" || extra.length > 0) throw new UsageError("compose-secrets takes only --out FILE");
  try {
    writeFileSync(file, envFile(composeSecrets()), { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new UsageError(`${file} exists; remove it first (the database volumes keep the old passwords)`);
    }
    throw error;
  }
  process.stdout.write(`wrote ${file}\n`);
}
