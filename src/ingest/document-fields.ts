import { z } from "zod";
import { CONTENT_TYPES } from "../text/content.ts";
import { PRINCIPAL_PATTERN } from "../tenancy/principal.ts";

/** The fields of an uploaded document, validated the same way in a batch, a PUT and an import line. */
export const externalId = z.string().min(1, "must not be empty").max(512, "at most 512 characters");
export const metadata = z
  .record(z.string().max(200), z.unknown())
  .refine((m) => JSON.stringify(m).length <= 64 * 1024, "at most 64 KiB of JSON");

/** One principal: `*` (the whole tenant), `user:<id>` or `group:<id>`. */
export const principal = z
  .string()
  .regex(PRINCIPAL_PATTERN, 'a principal is "*", "user:<id>" or "group:<id>" (no spaces, commas, braces, quotes)');

/** Who may read a document: `*` (the whole tenant, the default), `user:<id>`, `group:<id>`. */
export const accessList = z
  .array(principal)
  .min(1, 'at least one principal ("*" for the whole tenant)')
  .max(100, "at most 100 principals")
  .transform((list) => [...new Set(list)]);

export const documentFields = {
  content: z.string(),
  content_type: z.enum(CONTENT_TYPES).default("text/plain"),
  title: z.string().max(1000).nullish(),
  source: z.string().max(2000).nullish(),
  metadata: metadata.optional(),
  access: accessList.optional(),
};
