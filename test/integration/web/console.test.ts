import { describe, expect, it, onTestFinished } from "vitest";
import { renderPdf } from "../../../harness/render-documents.ts";
import { startDevInferenceServer } from "../../../src/dev/dev-server.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { revokeApiKey } from "../../../src/tenancy/api-keys.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { seedScifact } from "../../helpers/ingest.ts";
import { expectAccessible, launchBrowser, pageErrors } from "../../helpers/browser.ts";

/** A page's requests and rendering, on a busy machine. */
const UI = { timeout: 15_000 };
/** An answer streamed by the dev backend, retrieval included. */
const ANSWER = { timeout: 30_000 };
/** The API's cache of a key's check (PGRAG_AUTH_CACHE_TTL_MS, 10 s), asked again each second. */
const UNTIL_REVOKED = { timeout: 30_000, interval: 1_000 };

describe("the console", () => {
  it("signs in, creates a collection, uploads a Markdown file and a PDF, shows chunks by page, searches, chats, renames and deletes", async () => {
    const app = await startTestApp({}, { listen: true, workers: true });
    const { key, id: keyId } = await newTenantKey(app);
    const browser = await launchBrowser();
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`http://127.0.0.1:${app.port()}/`);
    await expectAccessible(page, "sign-in");

    // A wrong key is refused, and says so.
    await page.getByLabel("API key").fill("pgr_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent(), UI).toMatch(/not valid/);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("heading", { name: "Collections" }).isVisible(), UI).toBe(true);
    await expectAccessible(page, "collections");

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
    await page.getByLabel("Choose files").setInputFiles([
      { name: "notes.md", mimeType: "text/markdown", buffer: Buffer.from("# Notes\n\nWind turbines and the grid.") },
      { name: "report.pdf", mimeType: "application/pdf", buffer: Buffer.from(pdf) },
    ]);
    const statusOf = (name: string) => page.getByRole("row").filter({ hasText: name }).locator(".status").textContent();
    await expect.poll(() => statusOf("notes.md"), { timeout: 30_000 }).toBe("ready");
    await expect.poll(() => statusOf("report.pdf"), { timeout: 30_000 }).toBe("ready");
    await expectAccessible(page, "documents");

    await page.getByRole("link", { name: "report.pdf" }).click();
    await expect.poll(() => page.getByRole("list", { name: "Chunks" }).textContent(), UI).toContain("report.pdf, p. 1");
    expect(await page.getByRole("list", { name: "Chunks" }).textContent()).toContain("Perovskite tandem cells");
    await expectAccessible(page, "document");

    // Chat: a streamed answer whose citation opens its passage, a follow-up in the same conversation,
    // feedback, and the conversation found again after a reload.
    await page.getByRole("link", { name: "Chat" }).click();
    await expect.poll(() => page.getByLabel("Collection").inputValue(), UI).toBe("docs");
    await page.getByLabel("Question").fill("What did perovskite tandem cells reach?");
    await page.getByLabel("Question").press("Enter");
    const source = page.getByRole("button", { name: /^Source \d+: report\.pdf, p\. 1$/ }).first();
    await expect.poll(() => source.isVisible(), ANSWER).toBe(true);
    await source.click();
    expect(await page.getByRole("figure", { name: "Cited passage" }).textContent()).toContain(
      "Perovskite tandem cells",
    );
    await page.getByRole("button", { name: "Helpful" }).first().click();
    await expect.poll(() => page.getByRole("status").first().textContent(), UI).toMatch(/marked helpful/);
    await page.getByLabel("Question").fill("Which cells reached record efficiency?");
    await page.getByRole("button", { name: "Ask" }).click();
    await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), ANSWER).toBe(4);
    await expect.poll(() => page.getByRole("button", { name: "Ask" }).isVisible(), ANSWER).toBe(true);
    await page.reload();
    const conversation = page.getByRole("complementary", { name: "Conversations" }).getByRole("button").nth(1);
    await expect.poll(() => conversation.textContent(), UI).toBe("What did perovskite tandem cells reach?");
    await conversation.click();
    await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), UI).toBe(4);
    await expectAccessible(page, "chat");
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
    await expectAccessible(page, "search");
    await page.getByRole("link", { name: "Jobs" }).click();
    await expect.poll(() => page.getByRole("heading", { name: "Batches" }).isVisible(), UI).toBe(true);
    await expectAccessible(page, "jobs");

    await page.getByRole("link", { name: "Collections" }).first().click();
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Delete collection docs" }).click();
    await expect.poll(() => page.getByRole("status").textContent(), UI).toMatch(/Deleted "docs" and its 2 documents/);

    // A key revoked meanwhile: the next request signs out and clears the screen.
    await adminTransaction(app, (tx) => revokeApiKey(tx, keyId));
    // The API caches a key's check briefly: reloads until the revocation is seen.
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
  });

  it("generates on the user's device: the page streams the local engine's answer and stores it back", async () => {
    // The "local engine": a dev inference server on a port of its own, as Ollama would be.
    const engine = await startDevInferenceServer({
      dimension: 384,
      embeddingModel: "local-embeddings",
      chatModel: "local-model",
      apiKey: "local-engine-key",
    });
    onTestFinished(() => engine.close());
    const app = await startTestApp(
      { PGRAG_CONSOLE_ENGINE_ORIGINS: new URL(engine.url).origin },
      { listen: true, workers: true },
    );
    const { key, abstracts } = await seedScifact(app, 10);
    const platformAnswers = app.devInference()?.stats.chatRequests ?? 0;
    const browser = await launchBrowser();
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`http://127.0.0.1:${app.port()}/#/chat`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Chat" }).click();
    await page.getByText("Generate on this device").click();
    await page.getByLabel("Use the engine on this device").check();
    await page.getByLabel("Engine URL").fill(engine.url);
    await page.getByLabel("Model").fill("local-model");
    await page.getByLabel("Engine key (if it needs one)").fill("local-engine-key");
    await expect.poll(() => page.getByLabel("Collection").inputValue(), UI).toBe("sci");
    await page.getByLabel("Question").fill(abstracts[3]?.title ?? "");
    await page.getByLabel("Question").press("Enter");
    const sources = page.getByRole("button", { name: /^Source \d+:/ });
    await expect.poll(() => sources.count(), ANSWER).toBeGreaterThan(0);
    // The engine on the device answered; the platform's own backend was not asked.
    expect(engine.stats.chatRequests).toBe(1);
    expect(app.devInference()?.stats.chatRequests ?? 0).toBe(platformAnswers);
    await page.reload();
    await page.getByRole("complementary", { name: "Conversations" }).getByRole("button").nth(1).click();
    await expect.poll(() => page.getByRole("list", { name: "Messages" }).locator("li").count(), UI).toBe(2);
    await expect.poll(() => sources.count(), UI).toBeGreaterThan(0);
    await expectAccessible(page, "chat, generating on the device");
    expect(errors).toEqual([]);
  });
});
