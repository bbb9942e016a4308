import { defineConfig } from "vite";

// Nothing special: no dedupe, no alias. The package is installed from its
// tarball, so its peers resolve to this app's copies.
export default defineConfig({ build: { outDir: "dist", target: "es2022" }, logLevel: "warn" });
