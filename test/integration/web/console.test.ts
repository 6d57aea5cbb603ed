import { describe, expect, it, onTestFinished } from "vitest";
import { startDevInferenceServer } from "../../../src/dev/dev-server.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { revokeApiKey } from "../../../src/tenancy/api-keys.ts";
import { newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { seedScifact } from "../../helpers/ingest.ts";
import { expectUsable, launchBrowser, pageErrors } from "../../helpers/browser.ts";
import { ANSWER, UI, useTheConsole } from "../../helpers/console-flow.ts";

describe("the console", () => {
  it("on the native topology: sign-in, collections, uploads watched to ready, chunks by page, search, chat, jobs, a revoked key", async () => {
    const app = await startTestApp({}, { listen: true, workers: true });
    const { key, id: keyId } = await newTenantKey(app);
    const browser = await launchBrowser();
    await useTheConsole(await browser.newPage(), {
      url: `http://127.0.0.1:${app.port()}/`,
      signIn: async (page) => {
        await page.getByLabel("API key").fill(key);
        await page.getByRole("button", { name: "Sign in" }).click();
      },
      dev: app.devInference(),
      revokeKey: () => adminTransaction(app, (tx) => revokeApiKey(tx, keyId)).then(() => undefined),
    });
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
    await expectUsable(page, "chat, generating on the device");
    expect(errors).toEqual([]);
  });
});
