import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build in dist/ is committed: the gateway embeds it (src/server/dashboard.rs)
// so that `cargo run -- --demo` serves the dashboard at / with no Node step.
// `npm run check-dist` rebuilds it and fails when it differs from the sources.
export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: the page works wherever the gateway mounts it.
  base: "./",
  resolve: {
    // @tourcast/bindings is linked from ../bindings, which has its own React
    // (a dev dependency); one React only.
    dedupe: ["react", "react-dom"],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a gateway on :8080 (`cargo run -- --demo`).
    proxy: {
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
      "/health": "http://127.0.0.1:8080",
    },
  },
});
