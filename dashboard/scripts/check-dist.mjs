// The gateway embeds the committed build in dist/ (src/server/dashboard.rs).
// This rebuilds the dashboard from its sources (and the bindings' dist/) into
// a temporary directory and fails when the committed build differs:
// run `npm run build` in dashboard/ and commit dist/.
import { build } from "vite";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const committed = path.join(root, "dist");
const fresh = mkdtempSync(path.join(tmpdir(), "tourcast-dashboard-"));

function files(dir, prefix = "") {
  const out = new Map();
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const full = path.join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(full).isDirectory()) for (const [k, v] of files(full, rel)) out.set(k, v);
    else out.set(rel, readFileSync(full));
  }
  return out;
}

try {
  await build({ root, logLevel: "warn", build: { outDir: fresh, emptyOutDir: true } });
  const want = files(fresh);
  const have = files(committed);
  const problems = [];
  for (const [name, bytes] of want) {
    const current = have.get(name);
    if (current === undefined) problems.push(`missing: dist/${name}`);
    else if (!current.equals(bytes)) problems.push(`differs: dist/${name}`);
  }
  for (const name of have.keys()) if (!want.has(name)) problems.push(`stale:   dist/${name}`);
  if (problems.length > 0) {
    console.error("dashboard/dist does not match its sources (run `npm run build` in dashboard/ and commit dist/):");
    for (const p of problems) console.error(`  ${p}`);
    process.exitCode = 1;
  } else {
    console.log(`dashboard/dist matches its sources (${want.size} files)`);
  }
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
