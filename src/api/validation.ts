import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { InvalidRequestError } from "../errors.ts";

/** Describes zod issues as "field: problem" a person can act on. */
export function describeIssues(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): {
  message: string;
  details: { path: string; message: string }[];
} {
  const details = error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
  const shown = details.slice(0, 5).map((d) => `${d.path}: ${d.message}`);
  return {
    message: `invalid request: ${shown.join("; ")}${details.length > 5 ? ` (+${details.length - 5} more)` : ""}`,
    details,
  };
}

/** zod validation of a request part, failing with our error format. */
export function validate<Target extends keyof ValidationTargets, Schema extends z.ZodType>(
  target: Target,
  schema: Schema,
) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const { message, details } = describeIssues(result.error);
      throw new InvalidRequestError(message, { details });
    }
  });
}

/** PostgreSQL text cannot hold NUL characters: refuse them where a person can be told why. */
export const noNul = (s: string) => !s.includes("\u0000");
export const NO_NUL_MESSAGE = "must not contain NUL characters";
