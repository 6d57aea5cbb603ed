import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
import { describeIssues, InvalidRequestError } from "../errors.ts";

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
