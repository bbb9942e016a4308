// Tokens: a gateway with authentication on (`--jwt-secret`).

import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TourcastClient, TourcastError, type TourcastClientOptions } from "../client/index.js";
import { NodeWebSocket, sleep, startGateway, waitFor, type Gateway } from "./helpers.js";

const SECRET = "test-secret-of-the-client-suite";

/** An HS256 JWT valid for `ttlMs`. */
function jwt(ttlMs: number, tours: string[] | "*" = "*", sub = "alice"): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ sub, tours, exp: Math.floor((Date.now() + ttlMs) / 1000) });
  const signature = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

const clients: TourcastClient[] = [];
function client(options: Omit<TourcastClientOptions, "WebSocket">): TourcastClient {
  const c = new TourcastClient({ WebSocket: NodeWebSocket, ...options });
  clients.push(c);
  return c;
}

describe("with authentication on", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(["--demo-interval", "200ms", "--jwt-secret", SECRET]);
  });
  afterAll(async () => {
    await gateway?.stop();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it("connects with a token, and the token's tour permissions apply", async () => {
    const c = client({ url: gateway.url, token: jwt(60_000, ["tour_paris"]) });
    await c.subscribe("tour_paris");
    await waitFor("paris", () => c.state.tours.has("tour_paris"));
    const refused = await c.subscribe("tour_rome").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TourcastError);
    expect(refused).toMatchObject({ code: "forbidden" });
  });

  it("is refused without a token and keeps retrying", async () => {
    const c = client({ url: gateway.url, reconnect: { initialDelayMs: 50, maxDelayMs: 100 } });
    await waitFor("a few refused attempts", () => c.state.attempt >= 3, 5_000);
    expect(c.counters.connections).toBe(0);
  });

  it("renews the token before it expires, keeping the connection", async () => {
    let issued = 0;
    const c = client({
      url: gateway.url,
      // The first token lives 3 s; renewals an hour.
      token: () => jwt(issued++ === 0 ? 3_000 : 3_600_000),
      refreshMarginMs: 2_000,
    });
    const ticks: number[] = [];
    c.on("pong", () => ticks.push(Date.now()));
    await c.subscribe("*");
    await waitFor("the renewal", () => issued >= 2, 4_000);
    // Past the first token's expiry, still the same connection.
    await sleep(3_500);
    expect(c.counters.connections).toBe(1);
    expect(c.state.status).toBe("open");
    const refreshed = await c.refresh();
    expect(Date.parse(refreshed.expiresAt)).toBeGreaterThan(Date.now() + 3_000_000);
    await expect(c.refresh("not-a-jwt")).rejects.toMatchObject({ code: "invalid_message" });
  });

  it("reconnects with a fresh token when the gateway closes an expired connection (4001)", async () => {
    let issued = 0;
    const c = client({
      url: gateway.url,
      token: () => jwt(issued++ === 0 ? 2_000 : 3_600_000),
      autoRefresh: false,
      reconnect: { initialDelayMs: 50 },
    });
    await c.subscribe("*");
    await waitFor("the expiry close", () => c.state.lastClose !== undefined, 5_000);
    expect(c.state.lastClose?.code).toBe(4001);
    await waitFor("reconnected with a new token", () => c.state.status === "open" && c.counters.connections === 2, 5_000);
    expect(issued).toBe(2);
    await waitFor("resubscribed", () => c.state.tours.size === 3);
  });
});
