import { type Kysely, sql } from "kysely";
import type { Database } from "../src/db/database.ts";

/**
 * Runs `work` in a transaction that finds `schema`'s tables before public's (and with `settings`,
 * all transaction-local): the API's own query functions then run against a bench's scratch tables.
 */
export function inScratchSchema<T>(
  db: Kysely<Database>,
  schema: string,
  work: (tx: Kysely<Database>) => Promise<T>,
  settings: Readonly<Record<string, string>> = {},
): Promise<T> {
  return db.transaction().execute(async (tx) => {
    const all = Object.entries({ search_path: `${schema}, public`, ...settings });
    await sql`SELECT ${sql.join(all.map(([name, value]) => sql`set_config(${name}, ${value}, true)`))}`.execute(tx);
    return work(tx);
  });
}

/** A text's sentences (a split before a capital after . ! or ?), the pieces scale corpora recombine. */
export function sentencesOf(text: string): string[] {
  return text.split(/(?<=[.!?])\s+(?=[A-Z])/).filter((s) => s.length > 20);
}
