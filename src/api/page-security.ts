import { createHash } from "node:crypto";

/**
 * Content-Security-Policy values for pgrag's two pages. Nothing is loaded from another origin; the
 * chat page's one inline script and style are allowed by their hashes, not by 'unsafe-inline'.
 */
const BASE = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The policy for a page whose inline <script> and <style> blocks are exactly those in `html`. */
export function inlinePagePolicy(html: string): string {
  const hashes = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}[^>]*>([\\s\\S]*?)</${tag}>`, "g"))]
      .map(
        (m) =>
          `'sha256-${createHash("sha256")
            .update(m[1] ?? "")
            .digest("base64")}'`,
      )
      .join(" ");
  return `${BASE}; script-src ${hashes("script")}; style-src ${hashes("style")}; connect-src 'self'; img-src 'self' data:`;
}

/** Swagger UI from the same origin; it sets style attributes at run time, hence 'unsafe-inline' for styles only. */
export const DOCS_POLICY = `${BASE}; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:`;
