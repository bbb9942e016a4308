// What every end-to-end suite here needs: where the gateway binary, Chromium
// and RabbitMQ are; a gateway process started and awaited until `/ready`;
// Chromium launched headless the way this machine allows (no sandbox, no
// GPU, no background networking, nothing downloaded).

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const repo = path.resolve(here, "..", "..");
/** The gateway under test (`cargo build --bin tourcast`). */
export const BIN = process.env.TOURCAST_BIN ?? path.join(repo, "target", "debug", "tourcast");
/** Debian's Chromium; never a downloaded one. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The broker the RabbitMQ-backed suites use. */
export const AMQP_URL = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";
/** Where screenshots go. */
export const OUTPUT = path.join(repo, "test-output");

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A loopback port nobody listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/** A running gateway process. */
export interface Gateway {
  port: number;
  process: ChildProcess;
  /** Everything it has printed so far. */
  log: () => string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. */
  stop: () => Promise<void>;
}

/** Starts the gateway with `args` on `port` (a free one by default) and waits until `/ready`. */
export async function startGateway(args: string[], port?: number): Promise<Gateway> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`cargo build --bin tourcast\` first`);
  port ??= await freePort();
  const child = spawn(BIN, ["--bind", "127.0.0.1", "--port", String(port), "--shutdown-grace", "1s", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}):\n${output}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`gateway not ready within 30 s:\n${output}`);
    }
    await sleep(100);
  }
  return {
    port,
    process: child,
    log: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Debian's Chromium, headless, with the flags this sandbox needs. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
