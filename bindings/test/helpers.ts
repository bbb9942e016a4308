// Test helpers: the real gateway binary, a TCP proxy that can cut or
// black-hole connections, and polling.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { WebSocketFactory } from "../client/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

/** The `ws` package's class, as the client's WebSocket option. */
export const NodeWebSocket: WebSocketFactory = WebSocket;

/** The gateway binary built by `cargo build` (override with TOURCAST_BIN). */
export function gatewayBinary(): string {
  const bin = process.env.TOURCAST_BIN ?? path.join(repo, "target", "debug", "tourcast");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build --bin tourcast\` first (or set TOURCAST_BIN)`);
  }
  return bin;
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Gateway {
  readonly port: number;
  /** `ws://127.0.0.1:<port>/ws` */
  readonly url: string;
  readonly process: ChildProcess;
  /** Everything the process wrote, for failure messages. */
  log(): string;
  /** `GET /health` as JSON. */
  health(): Promise<{ connectedClients: number; epoch?: string }>;
  /** Stops the process (SIGTERM: graceful shutdown, clients get 1001) and waits for it. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts `tourcast --demo` on `port` (a free one by default) and waits until
 * `/health` answers. `args` are appended (e.g. `--demo-interval 50ms`).
 */
export async function startGateway(args: string[] = [], port?: number): Promise<Gateway> {
  const chosen = port ?? (await freePort());
  const child = spawn(
    gatewayBinary(),
    ["--demo", "--bind", "127.0.0.1", "--port", String(chosen), "--shutdown-grace", "1s", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
  );
  running.add(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => running.delete(child));

  const health = async () => {
    const response = await fetch(`http://127.0.0.1:${chosen}/health`);
    return (await response.json()) as { connectedClients: number; epoch?: string };
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}):\n${output}`);
    try {
      await health();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`gateway did not start:\n${output}`);
      await sleep(50);
    }
  }
  return {
    port: chosen,
    url: `ws://127.0.0.1:${chosen}/ws`,
    process: child,
    log: () => output,
    health,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * A TCP proxy in front of the gateway: `cut()` drops every connection as a
 * network failure would; `blackhole()` keeps them open but lets nothing
 * through, as a dead peer or a silent NAT timeout would.
 */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #passing = true;
  port = 0;

  constructor(readonly targetPort: number) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => this.#sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on("data", (d: Buffer) => {
        if (this.#passing) upstream.write(d);
      });
      upstream.on("data", (d: Buffer) => {
        if (this.#passing) client.write(d);
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    this.port = typeof address === "object" && address !== null ? address.port : 0;
    return this;
  }

  /** Destroys every proxied connection. */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /** Stops forwarding bytes (connections stay open). */
  blackhole(): void {
    this.#passing = false;
  }

  /** Forwards again; connections that lost bytes meanwhile are cut. */
  restore(): void {
    this.cut();
    this.#passing = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns (or resolves to) a value other than undefined/false. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
