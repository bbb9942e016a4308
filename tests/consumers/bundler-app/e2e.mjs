// Serves the built app (dist/) and opens it in headless Chromium against the
// real gateway (TOURCAST_URL); passes when the page shows a live update
// received over protobuf frames.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const gateway = process.env.TOURCAST_URL;
if (!gateway) throw new Error("TOURCAST_URL is not set");
const dist = path.resolve("dist");
const types = { ".html": "text/html", ".js": "text/javascript", ".json": "application/json" };
const server = createServer(async (req, res) => {
  const file = path.join(dist, new URL(req.url, "http://x").pathname.replace(/\/$/, "/index.html"));
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const page = `http://127.0.0.1:${server.address().port}/?gateway=${encodeURIComponent(gateway)}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const tab = await browser.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(String(e)));
  await tab.goto(page);
  await tab.waitForSelector("body[data-updated=yes]", { timeout: 20_000 }).catch(async (e) => {
    throw new Error(`${e.message}\npage: ${await tab.textContent("#log")}\nerrors: ${errors.join("\n")}`);
  });
  const log = await tab.textContent("#log");
  if (!/subscribed over proto/.test(log) || !/update tour_paris \d+ seq \d+ over proto/.test(log)) {
    throw new Error(`unexpected page: ${log}`);
  }
  if (errors.length > 0) throw new Error(errors.join("\n"));
  console.log(`bundler app in Chromium: ${log.split("\n").join(" | ")}`);
} finally {
  await browser.close();
  server.close();
}
