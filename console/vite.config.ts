import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The console's build, served by the API at `/` under a strict Content-Security-Policy: scripts and
// styles as files of this origin only (no inline module-preload polyfill, no inlined assets).
export default defineConfig({
  root: import.meta.dirname,
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2022",
  },
});
