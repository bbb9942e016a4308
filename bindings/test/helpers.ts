// Test helpers: the real gateway binary, a TCP proxy that can cut or
// black-hole connections, and polling.

import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
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
  return watch(child, chosen, "/health", 20_000);
}

/** Tracks a started gateway and waits until `GET readyPath` answers 2xx. */
async function watch(child: ChildProcess, chosen: number, readyPath: string, startMs: number): Promise<Gateway> {
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
  const deadline = Date.now() + startMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}):\n${output}`);
    try {
      const response = await fetch(`http://127.0.0.1:${chosen}${readyPath}`);
      if (!response.ok) throw new Error(`${readyPath}: ${response.status}`);
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`gateway did not start:\n${output}`);
      }
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
  #accepting = true;
  port = 0;

  constructor(readonly targetPort: number) {
    this.#server = net.createServer((client) => {
      if (!this.#accepting) {
        client.destroy();
        return;
      }
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

  /** Cuts every connection and refuses new ones until `resume()`: the client is offline. */
  pause(): void {
    this.#accepting = false;
    this.cut();
  }

  /** Accepts connections again. */
  resume(): void {
    this.#accepting = true;
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

/** An HS256 JWT signed with `secret` carrying `claims` (plus `exp`, `ttlMs` from now). */
export function signJwt(secret: string, claims: Record<string, unknown>, ttlMs = 3_600_000): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ exp: Math.floor((Date.now() + ttlMs) / 1000), ...claims });
  const signature = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

export const AMQP_URL = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/**
 * An exchange and a stream of a test's own on the real RabbitMQ (unique
 * names), for gateways started with `rabbit.args` instead of `--demo`.
 * `publish` sends events with `tourcast publish`, the CLI publishers use.
 */
export class RabbitFixture {
  readonly run = randomUUID().slice(0, 8);
  readonly exchange = `tourcast_ts_${this.run}`;
  readonly stream = `tourcast_ts_${this.run}`;

  /** Gateway flags reading this fixture's exchange and stream. */
  get args(): string[] {
    return [
      "--rabbitmq-url", AMQP_URL,
      "--rabbitmq-exchange", this.exchange,
      "--rabbitmq-stream", this.stream,
      "--rabbitmq-connection-name", `tourcast-ts-${this.run}`,
    ];
  }

  /** `tourcast publish --rabbitmq-exchange <ours> ...flags`; resolves once RabbitMQ confirmed. */
  async publish(flags: string[]): Promise<void> {
    const child = spawn(
      gatewayBinary(),
      ["publish", "--rabbitmq-url", AMQP_URL, "--rabbitmq-exchange", this.exchange, "--retry-for", "0", ...flags],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`tourcast publish ${flags.join(" ")} exited ${code}:\n${output}`);
  }

  /** Publishes JSON availability events straight to the exchange (confirmed), faster than the CLI for thousands. */
  async publishMany(events: object[], routingKey = "tour.availability.updated"): Promise<void> {
    const connection = await amqp.connect(AMQP_URL);
    try {
      const channel = await connection.createConfirmChannel();
      await channel.assertExchange(this.exchange, "topic", { durable: true });
      for (const event of events) {
        channel.publish(this.exchange, routingKey, Buffer.from(JSON.stringify(event)), {
          persistent: true,
          contentType: "application/json",
        });
      }
      await channel.waitForConfirms();
    } finally {
      await connection.close();
    }
  }

  /** A `booking.confirmed` notification for `userId`. */
  notify(userId: string, bookingId: string, kind: "booking-confirmed" | "booking-cancelled" = "booking-confirmed"): Promise<void> {
    return this.publish([
      "--kind", kind,
      "--user-id", userId,
      "--booking-id", bookingId,
      "--tour-id", "tour_paris",
      "--tour-name", "Paris City Tour",
      "--seats", "2",
      "--message", `${kind} ${bookingId}`,
    ]);
  }

  /** Deletes the stream and the exchange. */
  async dispose(): Promise<void> {
    const connection = await amqp.connect(AMQP_URL);
    try {
      const channel = await connection.createChannel();
      await channel.deleteQueue(this.stream);
      // Gateways write checkpoints next to the stream.
      await channel.deleteQueue(`${this.stream}.checkpoints`);
      await channel.deleteExchange(this.exchange);
    } finally {
      await connection.close();
    }
  }
}

/**
 * Starts the gateway (no `--demo`) reading RabbitMQ with `args`, and waits
 * until `/ready` says it is consuming.
 */
export async function startRabbitGateway(args: string[], port?: number): Promise<Gateway> {
  const chosen = port ?? (await freePort());
  const child = spawn(
    gatewayBinary(),
    ["--bind", "127.0.0.1", "--port", String(chosen), "--shutdown-grace", "1s", ...args],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
  );
  return watch(child, chosen, "/ready", 30_000);
}

/**
 * An HTTP proxy in front of the gateway that refuses every WebSocket upgrade
 * (403, as some corporate proxies do) and forwards plain HTTP, streaming
 * responses as they come (so `GET /sse` passes). `cut()` ends every
 * forwarded response.
 */
export class UpgradeRefusingProxy {
  readonly #server: http.Server;
  readonly #open = new Set<http.ServerResponse>();
  /** Upgrades refused so far. */
  refusedUpgrades = 0;
  /** Paths of the plain requests forwarded, with their query. */
  readonly requests: string[] = [];
  port = 0;

  constructor(readonly targetPort: number) {
    this.#server = http.createServer((req, res) => {
      this.requests.push(req.url ?? "");
      const upstream = http.request(
        { host: "127.0.0.1", port: this.targetPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.flushHeaders();
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      this.#open.add(res);
      res.on("close", () => {
        this.#open.delete(res);
        upstream.destroy();
      });
      req.pipe(upstream);
    });
    this.#server.on("upgrade", (_req, socket: net.Socket) => {
      this.refusedUpgrades += 1;
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nConnection: close\r\n\r\nupgrades forbidden");
    });
  }

  /** The WebSocket URL a client is given (`/sse` is derived from it). */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    this.port = typeof address === "object" && address !== null ? address.port : 0;
    return this;
  }

  /** Ends every forwarded response (an event stream is cut). */
  cut(): void {
    for (const res of this.#open) res.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
