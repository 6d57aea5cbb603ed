import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createApp } from "../../../src/app.ts";
import { loadConfig } from "../../../src/config.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { findActiveKey, revokeApiKey } from "../../../src/tenancy/api-keys.ts";
import { launchBrowser } from "../../helpers/browser.ts";
import { useTheConsole } from "../../helpers/console-flow.ts";

// The embedded default as `npm start` runs it (PGlite, the dev backend, workers in process), on a port of its own.
const app = createApp(
  loadConfig({
    PGRAG_EMBEDDED_DATA_DIR: join(mkdtempSync(join(tmpdir(), "pgrag-console-")), "data"),
    PGRAG_EMBEDDED_PORT: "55995",
    PGRAG_PORT: "0",
  }),
  { logger: pino({ level: "silent" }) },
);
beforeAll(() => app.start({ listen: true }));
afterAll(() => app.stop());

describe("the console in embedded mode, at phone width", () => {
  it("offers this machine's key, and everything else works as on the native topology", async () => {
    const browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await useTheConsole(page, {
      url: `http://127.0.0.1:${app.port()}/`,
      signIn: (signInPage) =>
        signInPage.getByRole("button", { name: "Use this machine's key (embedded mode)" }).click(),
      dev: app.devInference(),
      revokeKey: () =>
        adminTransaction(app, async (tx) => {
          const principal = await findActiveKey(tx, app.devApiKey() ?? "");
          if (principal) await revokeApiKey(tx, principal.keyId);
        }),
    });
  });
});
