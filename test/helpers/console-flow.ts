import type { Page } from "playwright-core";
import { expect } from "vitest";
import { renderPdf } from "../../harness/render-documents.ts";
import type { DevInferenceServer } from "../../src/dev/dev-server.ts";
import { expectUsable, pageErrors } from "./browser.ts";
import { injectDevFaults } from "./dev-faults.ts";

/** A page's requests and rendering, on a busy machine. */
export const UI = { timeout: 15_000 };
/** An answer streamed by the dev backend, retrieval included. */
export const ANSWER = { timeout: 30_000 };
/** The API's cache of a key's check (PGRAG_AUTH_CACHE_TTL_MS, 10 s), asked again each second. */
const UNTIL_REVOKED = { timeout: 30_000, interval: 1_000 };
/** How long the dev backend holds each embedding request, so the documents' stages can be watched. */
const SLOW_EMBEDDING_MS = 5_000;

export interface ConsoleTarget {
  /** The console's URL. */
  readonly url: string;
  /** Signs in on the sign-in screen with the right key (typed, or offered by the page). */
  readonly signIn: (page: Page) => Promise<void>;
  /** The platform's own dev inference backend, slowed down to watch stages and stop an answer. */
  readonly dev: DevInferenceServer | undefined;
  /** Revokes the signed-in key behind the console's back. */
  readonly revokeKey: () => Promise<void>;
}

/**
 * What a person does in the console, end to end: a wrong key, sign-in, a collection with a Markdown
 * file and a PDF watched through their stages to ready, a document's chunks by page, search with
 * per-leg ranks, chat (a streamed answer, a citation opened, feedback read back after a reload, a
 * follow-up, an answer stopped, rename, delete), jobs, the collection deleted, and the key revoked
 * meanwhile. Every screen is checked for accessibility and for fitting the page's width.
 */
export async function useTheConsole(page: Page, target: ConsoleTarget): Promise<void> {
  const errors = pageErrors(page);
  await page.goto(target.url);
  await expectUsable(page, "sign-in");

  // A wrong key is refused, and says so.
  await page.getByLabel("API key").fill("pgr_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect.poll(() => page.getByRole("alert").textContent(), UI).toMatch(/not valid/);
  await target.signIn(page);
  await expect.poll(() => page.getByRole("heading", { name: "Collections" }).isVisible(), UI).toBe(true);
  await expectUsable(page, "collections");

  await page.getByLabel("Name").fill("docs");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("link", { name: "docs" }).click();
  await expect.poll(() => page.getByRole("heading", { name: "docs" }).isVisible(), UI).toBe(true);

  const pdf = await renderPdf({
    title: "Solar report",
    sections: [
      {
        heading: "Findings",
        paragraphs: ["The trial ran for a year.", "Perovskite tandem cells reached record efficiency."],
      },
    ],
  });
  // Embedding held back: the list shows where each document is, then ready.
  const slow = injectDevFaults(target.dev, { embeddingDelayMs: SLOW_EMBEDDING_MS });
  await page.getByLabel("Choose files").setInputFiles([
    { name: "notes.md", mimeType: "text/markdown", buffer: Buffer.from("# Notes\n\nWind turbines and the grid.") },
    { name: "report.pdf", mimeType: "application/pdf", buffer: Buffer.from(pdf) },
  ]);
  const statusOf = (name: string) => page.getByRole("row").filter({ hasText: name }).locator(".status").textContent();
  await expect.poll(() => statusOf("report.pdf"), { timeout: 30_000 }).toBe("embedding");
  slow.clear();
  await expect.poll(() => statusOf("notes.md"), { timeout: 30_000 }).toBe("ready");
  await expect.poll(() => statusOf("report.pdf"), { timeout: 30_000 }).toBe("ready");
  await expectUsable(page, "documents");

  await page.getByRole("link", { name: "report.pdf" }).click();
  await expect.poll(() => page.getByRole("list", { name: "Chunks" }).textContent(), UI).toContain("report.pdf, p. 1");
  expect(await page.getByRole("list", { name: "Chunks" }).textContent()).toContain("Perovskite tandem cells");
  await expectUsable(page, "document");

  // Chat: a streamed answer whose citation opens its passage, feedback, a follow-up in the same
  // conversation, and the conversation (with its feedback) found again after a reload.
  await page.getByRole("link", { name: "Chat" }).click();
  await expect.poll(() => page.getByLabel("Collection").inputValue(), UI).toBe("docs");
  await page.getByLabel("Question").fill("What did perovskite tandem cells reach?");
  await page.getByLabel("Question").press("Enter");
  const source = page.getByRole("button", { name: /^Source \d+: report\.pdf, p\. 1$/ }).first();
  await expect.poll(() => source.isVisible(), ANSWER).toBe(true);
  await source.click();
  expect(await page.getByRole("figure", { name: "Cited passage" }).textContent()).toContain("Perovskite tandem cells");
  await page.getByLabel("Comment on this answer").fill("cites the page");
  await page.getByRole("button", { name: "Helpful" }).first().click();
  const rated = page.getByRole("list", { name: "Messages" }).getByRole("status");
  await expect.poll(() => rated.textContent(), UI).toBe("You marked this helpful: “cites the page”");
  await page.getByLabel("Question").fill("Which cells reached record efficiency?");
  await page.getByRole("button", { name: "Ask" }).click();
  await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), ANSWER).toBe(4);
  await expect.poll(() => page.getByRole("button", { name: "Ask" }).isVisible(), ANSWER).toBe(true);

  // Stop cuts an answer short: the backend's stream is abandoned and the composer is back.
  const slowAnswer = injectDevFaults(target.dev, { tokenDelayMs: 200 });
  const abortedBefore = target.dev?.stats.abortedChats ?? 0;
  await page.getByLabel("Question").fill("Tell me everything about the trial.");
  await page.getByLabel("Question").press("Enter");
  await page.getByRole("button", { name: "Stop" }).click();
  await expect.poll(() => page.getByRole("button", { name: "Ask" }).isVisible(), UI).toBe(true);
  await expect.poll(() => target.dev?.stats.abortedChats ?? 0, UI).toBe(abortedBefore + 1);
  slowAnswer.clear();

  await page.reload();
  const conversation = page.getByRole("complementary", { name: "Conversations" }).getByRole("button").nth(1);
  await expect.poll(() => conversation.textContent(), UI).toBe("What did perovskite tandem cells reach?");
  await conversation.click();
  await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), UI).toBeGreaterThan(4);
  expect(await rated.first().textContent()).toBe("You marked this helpful: “cites the page”");
  await expectUsable(page, "chat");
  page.once("dialog", (dialog) => void dialog.accept("Perovskite questions"));
  await page.getByRole("button", { name: "Rename What did perovskite tandem cells reach?" }).click();
  await expect.poll(() => conversation.textContent(), UI).toBe("Perovskite questions");
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: "Delete Perovskite questions" }).click();
  await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), UI).toBe(0);
  await expect.poll(() => page.getByRole("button", { name: "Delete Perovskite questions" }).count(), UI).toBe(0);

  // The search playground: per-leg ranks and the timings; the jobs view.
  await page.getByRole("link", { name: "Search" }).click();
  await expect.poll(() => page.getByLabel("Collection").inputValue(), UI).toBe("docs");
  await page.getByLabel("Query").fill("perovskite tandem cells");
  await page.getByRole("button", { name: "Search" }).click();
  const results = page.getByRole("table", { name: "Results" });
  await expect.poll(() => results.textContent(), UI).toContain("report.pdf, p. 1");
  expect(await results.locator("tbody tr").first().locator("td").nth(4).textContent()).toMatch(/^#1 \(/);
  expect(await page.getByRole("status").textContent()).toMatch(/results from (primary|replica\d).*total/);
  await expectUsable(page, "search");
  await page.getByRole("link", { name: "Jobs" }).click();
  await expect.poll(() => page.getByRole("heading", { name: "Batches" }).isVisible(), UI).toBe(true);
  await expectUsable(page, "jobs");

  await page.getByRole("link", { name: "Collections" }).first().click();
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: "Delete collection docs" }).click();
  await expect.poll(() => page.getByRole("status").textContent(), UI).toMatch(/Deleted "docs" and its 2 documents/);

  // A key revoked meanwhile: the next request signs out and clears the screen.
  await target.revokeKey();
  // The API caches a key's check briefly: asks again until the revocation is seen.
  await expect
    .poll(async () => {
      // Signed out already: the notice is on screen. Else the Collections view asks again (no
      // reload: a reload after the sign-out would show a fresh sign-in page, without the notice).
      if (await page.getByRole("heading", { name: "pgrag console" }).isVisible()) return true;
      await page.evaluate(() => {
        location.hash = location.hash === "#/" ? "#/jobs" : "#/";
      });
      return false;
    }, UNTIL_REVOKED)
    .toBe(true);
  expect(await page.getByRole("alert").textContent()).toMatch(/Signed out: the key was refused/);
  expect(await page.getByRole("table").count()).toBe(0);
  // Nothing refused by the Content-Security-Policy, no script error; the wrong and revoked key's 401s were expected.
  expect(errors.filter((error) => !/status of 401/.test(error))).toEqual([]);
}
