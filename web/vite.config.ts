import { defineConfig } from "vite";

// A plain multi-module TypeScript app: Vite bundles it into dist/, which the local stack
// (local_stack/webapp.py) or Firebase Hosting serves. No framework.
export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    // one bundle: the Firebase SDK and hls.js are most of it, and the app needs both at once
    chunkSizeWarningLimit: 1500,
  },
});
