// End to end, in headless Chromium: the dashboard behind a proxy that refuses
// WebSocket upgrades (403, as some corporate proxies do) stays live over
// Server-Sent Events, read by Chromium's own EventSource (`transport: "auto"`
// falls back after two refused handshakes).
//
// Needs `cargo build --bin tourcast` (a gateway with `GET /sse`); no RabbitMQ:
// the gateway runs its demo feed. The proxy serves the page from this
// directory's committed build (dist/), the one the gateway embeds, so the
// test checks that build even against a binary built from an older tree, and
// forwards every other plain request (`/sse`) to the gateway, streaming.

import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, launchBrowser, repo, startGateway } from "./harness";

const DIST = path.join(repo, "dashboard", "dist");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".json": "application/json",
};

/** The refusing proxy: dist/ at `/` and `/assets/`, 403 on upgrades, everything else forwarded. */
class RefusingProxy {
  readonly server: http.Server;
  readonly streams = new Set<http.ServerResponse>();
  readonly sseRequests: string[] = [];
  refusedUpgrades = 0;
  /** When false, upgrades are passed through to the gateway (a proxy that allows WebSocket). */
  refuse = true;
  port = 0;

  constructor(readonly target: number) {
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://proxy");
      if (req.method === "GET" && (url.pathname === "/" || url.pathname.startsWith("/assets/"))) {
        const file = path.join(DIST, url.pathname === "/" ? "index.html" : path.normalize(url.pathname));
        if (!file.startsWith(DIST) || !existsSync(file)) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
        res.end(readFileSync(file));
        return;
      }
      if (url.pathname === "/sse") this.sseRequests.push(req.url ?? "");
      const upstream = http.request(
        { host: "127.0.0.1", port: this.target, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.flushHeaders();
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      this.streams.add(res);
      res.on("close", () => {
        this.streams.delete(res);
        upstream.destroy();
      });
      req.pipe(upstream);
    });
    this.server.on("upgrade", (req, socket: net.Socket, head: Buffer) => {
      if (!this.refuse) {
        const upstream = net.connect(this.target, "127.0.0.1", () => {
          const lines = [`${req.method} ${req.url} HTTP/1.1`];
          for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
          upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
          upstream.write(head);
          upstream.pipe(socket);
          socket.pipe(upstream);
        });
        upstream.on("error", () => socket.destroy());
        socket.on("error", () => upstream.destroy());
        return;
      }
      this.refusedUpgrades += 1;
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nConnection: close\r\n\r\nupgrades forbidden");
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    this.port = typeof address === "object" && address !== null ? address.port : 0;
    return this;
  }

  /** Ends every forwarded response: the event stream is cut. */
  cut(): void {
    for (const res of this.streams) res.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe("the dashboard behind a proxy that refuses WebSocket upgrades", () => {
  let gateway: Gateway;
  let proxy: RefusingProxy;
  let browser: Browser;
  let page: Page;
  const pageErrors: Error[] = [];

  /** The seats every card shows, as one string. */
  const seats = () =>
    page.$$eval('[data-testid="tour-card"]', (cards) =>
      cards.map((c) => `${c.getAttribute("data-tour-id")}=${c.getAttribute("data-seats")}`).join(","),
    );

  beforeAll(async () => {
    gateway = await startGateway(["--demo", "--demo-interval", "100ms"]);
    proxy = await new RefusingProxy(gateway.port).listen();
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on("pageerror", (error) => pageErrors.push(error));
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await gateway?.stop();
  });

  it("falls back to SSE and renders the snapshot", async () => {
    const response = await page.goto(`http://127.0.0.1:${proxy.port}/`);
    expect(response?.status()).toBe(200);
    await page.waitForSelector('[data-testid="connection"][data-status="open"][data-transport="sse"]', { timeout: 15_000 });
    expect(proxy.refusedUpgrades).toBeGreaterThanOrEqual(2);
    expect(await page.locator('[data-testid="connection"]').textContent()).toContain("Live · SSE");
    await expect.poll(() => page.locator('[data-testid="tour-card"]').count(), { timeout: 10_000 }).toBe(3);
    // Chromium's own EventSource asked for every tour.
    expect(proxy.sseRequests.length).toBeGreaterThanOrEqual(1);
    expect(new URL(proxy.sseRequests[0] ?? "", "http://x").searchParams.get("tours")).toBe("*");
  });

  it("stays live: the demo's bookings show up", async () => {
    const before = await seats();
    await expect.poll(seats, { timeout: 10_000, interval: 100 }).not.toBe(before);
    expect(await page.locator('[data-testid="connection"]').getAttribute("data-transport")).toBe("sse");
  });

  it("reconnects over SSE after the stream is cut, resuming from the last event id, and is live again", async () => {
    const streamsBefore = proxy.sseRequests.length;
    proxy.cut();
    await expect.poll(() => proxy.sseRequests.length, { timeout: 15_000 }).toBeGreaterThan(streamsBefore);
    await page.waitForSelector('[data-testid="connection"][data-status="open"][data-transport="sse"]', { timeout: 15_000 });
    const resumed = new URL(proxy.sseRequests.at(-1) ?? "", "http://x").searchParams;
    expect(resumed.get("tours")).toBe("*");
    expect(resumed.get("lastEventId")).toMatch(/^\d+$/);
    const before = await seats();
    await expect.poll(seats, { timeout: 10_000, interval: 100 }).not.toBe(before);
  });

  it("is back on WebSocket after the gateway restarts, once the proxy lets upgrades through", async () => {
    // The stream ends (SIGTERM); every reconnect tries one WebSocket handshake
    // before the next stream, and while nothing gets through it alternates.
    proxy.refuse = false;
    await gateway.stop();
    await page.waitForSelector('[data-testid="connection"][data-connected="false"]', { timeout: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    gateway = await startGateway(["--demo", "--demo-interval", "100ms"], gateway.port);
    await page.waitForSelector('[data-testid="connection"][data-status="open"][data-transport="websocket"]', { timeout: 35_000 });
    expect(await page.locator('[data-testid="connection"]').textContent()).toContain("Live");
    const before = await seats();
    await expect.poll(seats, { timeout: 10_000, interval: 100 }).not.toBe(before);
  }, 60_000);

  it("raised no uncaught page errors", () => {
    expect(pageErrors.map((e) => e.message)).toEqual([]);
  });
});
