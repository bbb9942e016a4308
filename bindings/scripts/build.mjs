// `npm run build` (and `npm pack`, through `prepare`): compiles the package
// into dist/ from scratch and copies the published JSON Schemas into
// dist/schemas/, so that `import schema from "@tourcast/bindings/schemas/
// client_message.schema.json" with { type: "json" }` works in a consumer.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
// A stale file (a message removed from proto/) must not ship.
rmSync(dist, { recursive: true, force: true });
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
cpSync(path.join(root, "..", "schemas"), path.join(dist, "schemas"), { recursive: true });
