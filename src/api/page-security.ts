/**
 * Content-Security-Policy values for pgrag's two pages, the console and the API docs. Nothing is
 * loaded from, or sent to, another origin.
 */
const BASE = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The console: its scripts and styles are files from this origin (Vite's build, no inline code); it talks to this API only. */
export const CONSOLE_POLICY = `${BASE}; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'`;

/** Swagger UI from the same origin; it sets style attributes at run time, hence 'unsafe-inline' for styles only. */
export const DOCS_POLICY = `${BASE}; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:`;
