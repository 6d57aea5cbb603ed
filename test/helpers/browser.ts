import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../../harness/chromium.ts";
import { expect, onTestFinished } from "vitest";

/** Debian's Chromium, closed when the test finishes. */
export async function launchBrowser(): Promise<Browser> {
  const browser = await launchChromium();
  onTestFinished(() => browser.close());
  return browser;
}

/** Errors the page reports (a script error, a request its Content-Security-Policy refused), collected as they come. */
export function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  return errors;
}

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * A screen as it is: no serious or critical accessibility violation (axe-core run in the page), and
 * nothing wider than the window (at phone width, no sideways scrolling).
 */
export async function expectUsable(page: Page, screen: string): Promise<void> {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${screen}: wider than the window by ${overflow} px`).toBeLessThanOrEqual(0);
  const violations = (await page.evaluate(
    `${AXE}\n;axe.run({ resultTypes: ["violations"] }).then((r) => r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id + ": " + v.help + " (" + v.nodes.length + ")"))`,
  )) as string[];
  expect(violations, `${screen}: accessibility violations`).toEqual([]);
}
