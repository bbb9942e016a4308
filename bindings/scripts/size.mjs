// Bundle size of the client as an application ships it: esbuild, minified,
// tree-shaken, gzip -9 and brotli. `npm run size` (after `npm run build`).
import { build } from "esbuild";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cases = {
  "client, JSON only": `import { TourcastClient } from "./dist/client/index.js";
    new TourcastClient({ url: "ws://x/ws" });`,
  "client + protobuf codec": `import { TourcastClient } from "./dist/client/index.js";
    import { protoCodec } from "./dist/client/proto.js";
    new TourcastClient({ url: "ws://x/ws", codec: protoCodec });`,
  "client + React hook (React itself excluded)": `import { useTourAvailability } from "./dist/react/index.js";
    export { useTourAvailability };`,
};

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log("| bundle | minified | gzip | brotli |\n|---|---|---|---|");
for (const [name, contents] of Object.entries(cases)) {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    write: false,
    external: ["react", "react-dom"],
    logLevel: "error",
  });
  const code = result.outputFiles[0].contents;
  const gz = gzipSync(code, { level: 9 }).length;
  const br = brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  console.log(`| ${name} | ${kb(code.length)} | ${kb(gz)} | ${kb(br)} |`);
}
