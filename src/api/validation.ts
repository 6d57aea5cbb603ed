import type { MiddlewareHandler, ValidationTargets } from "hono";
import { validator } from "hono-openapi";
import type { z } from "zod";
import { describeIssues, InvalidRequestError } from "../errors.ts";
import { refuseDeepJson } from "../text/json-depth.ts";

const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;

/**
 * zod validation of a request part, failing with our error format. The schema also documents the
 * route: the OpenAPI document is generated from these validators (openapi.ts).
 */
export function validate<Target extends keyof ValidationTargets, Schema extends z.ZodType>(
  target: Target,
  schema: Schema,
) {
  return validator(target, schema, (result, c) => {
    if (result.success) return;
    // Without a JSON content type the body is not read at all (curl -d sends a form type): say so,
    // rather than that every field is missing.
    const type = c.req.header("Content-Type") ?? "";
    if (target === "json" && !JSON_TYPE.test(type)) {
      throw new InvalidRequestError(
        `send the body as JSON with Content-Type: application/json (got ${type ? `"${type}"` : "no Content-Type"})`,
      );
    }
    const issues = result.error.map((issue) => ({
      message: issue.message,
      path: (issue.path ?? []).map((segment) => (typeof segment === "object" ? segment.key : segment)),
    }));
    const { message, details } = describeIssues({ issues });
    throw new InvalidRequestError(message, { details });
  });
}

/**
 * Refuses a JSON body nested deeper than MAX_JSON_DEPTH before anything parses it. Runs after the
 * body's size limit: the text it reads is bounded already (Hono keeps it for the validator's parse).
 */
export function limitJsonDepth(): MiddlewareHandler {
  return async function limitJsonDepth(c, next) {
    if (JSON_TYPE.test(c.req.header("Content-Type") ?? "")) refuseDeepJson(await c.req.text(), "the request body");
    await next();
  };
}
