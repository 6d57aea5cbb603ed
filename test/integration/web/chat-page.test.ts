import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { describe, expect, it, onTestFinished } from "vitest";
import { startTestApp } from "../../helpers/app.ts";
import { seedScifact } from "../../helpers/ingest.ts";

describe("the chat page", () => {
  it("streams an answer to a typed question, with a citation that opens its source passage", async () => {
    const app = await startTestApp({}, { listen: true, workers: true });
    const { key, abstracts } = await seedScifact(app, 20);

    // Debian's Chromium, installed by scripts/ensure-deps.sh; the flags keep it off the network.
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    onTestFinished(() => browser.close());
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${app.port()}/`);
    await page.getByLabel("API key").fill(key);
    await page.getByLabel("API key").dispatchEvent("change");
    await expect.poll(() => page.locator("#collection option").allTextContents()).toEqual(["sci"]);
    await expect.poll(() => page.locator("#notice").isVisible()).toBe(true);
    await page.getByLabel("Question").fill(abstracts[4]?.title ?? "");
    await page.getByRole("button", { name: "Ask" }).click();

    await expect.poll(() => page.locator("#citations button").count(), { timeout: 15_000 }).toBeGreaterThan(0);
    const answer = await page.locator("#answer").textContent();
    expect(answer?.length ?? 0).toBeGreaterThan(20);
    expect(await page.locator("#meta").textContent()).toMatch(
      /mode hybrid, retrieval \d+ ms on (replica\d|primary), answered in \d+ ms/,
    );
    await page.locator("#citations button").first().click();
    const source = await page.locator("#source").textContent();
    expect(source?.length ?? 0).toBeGreaterThan(50);
    // The cited sentence of the answer is in the passage the citation opens.
    const firstCited = /([^[\]]+?)\s*\[1\]/
      .exec(answer ?? "")?.[1]
      ?.trim()
      .replace(/\s+/g, " ");
    if (firstCited) expect(source?.replace(/\s+/g, " ")).toContain(firstCited);
    mkdirSync("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/chat-page.png", fullPage: true });
  });
});
