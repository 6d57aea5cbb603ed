/**
 * Content-Security-Policy values for pgrag's two pages, the console and the API docs. Nothing is
 * loaded from another origin.
 */
const BASE = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The console: its scripts and styles are files from this origin (Vite's build, no inline code); it
 * talks to this API, and to the inference engines on the user's own machine that the operator lists
 * (loopback origins only: PGRAG_CONSOLE_ENGINE_ORIGINS), for generating on the device.
 */
export function consolePolicy(engineOrigins: readonly string[]): string {
  return `${BASE}; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${["'self'", ...engineOrigins].join(" ")}`;
}

/** Swagger UI from the same origin; it sets style attributes at run time, hence 'unsafe-inline' for styles only. */
export const DOCS_POLICY = `${BASE}; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:`;
