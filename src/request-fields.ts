import { z } from "zod";

/** Request fields that several routes and the capabilities behind them take, defined once. */

/** PostgreSQL text cannot hold NUL characters: refuse them where a person can be told why. */
export const noNul = (s: string) => !s.includes("\u0000");
export const NO_NUL_MESSAGE = "must not contain NUL characters";

export const collectionName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/,
    "use 1–100 letters, digits, '_', '.', '-', starting with a letter or digit",
  );

export const searchMode = z.enum(["hybrid", "vector", "bm25"]);

export const MAX_QUESTION_CHARS = 8_000;

/** A question for the chat routes, /v1/chat and the OpenAI facade alike. */
export const question = z
  .string()
  .trim()
  .min(1, "the question is empty")
  .max(MAX_QUESTION_CHARS, `at most ${MAX_QUESTION_CHARS} characters`)
  .refine(noNul, NO_NUL_MESSAGE);
