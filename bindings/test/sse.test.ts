// The client over Server-Sent Events against the real gateway binary
// (`tourcast --demo`), read by the npm `eventsource` package: snapshot then
// live events, the `tours=` filter, resuming after a cut with exactly the
// missed events, a subscription change reopening the stream, `auto` falling
// back from a proxy that refuses WebSocket upgrades, and rooms refused with
// the typed error. The same without a gateway is in sse.unit.test.ts.

import { EventSource } from "eventsource";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  TourcastClient,
  TourcastError,
  TransportError,
  type MessageOf,
  type NotificationOf,
  type ServerMessage,
  type TourcastClientOptions,
} from "../client/index.js";
import {
  NodeWebSocket,
  RabbitFixture,
  signJwt,
  sleep,
  startGateway,
  startRabbitGateway,
  TcpProxy,
  UpgradeRefusingProxy,
  waitFor,
  type Gateway,
} from "./helpers.js";

const clients: TourcastClient[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

function client(options: Omit<TourcastClientOptions, "WebSocket" | "EventSource">): TourcastClient {
  const c = new TourcastClient({ WebSocket: NodeWebSocket, EventSource, transport: "sse", ...options });
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Event = MessageOf<"tour.availability.updated"> | MessageOf<"tour.availability.low">;
const isEvent = (m: ServerMessage): m is Event => m.type === "tour.availability.updated" || m.type === "tour.availability.low";

/** The tour events a client delivers, in order. */
function events(c: TourcastClient): Event[] {
  const seen: Event[] = [];
  c.on("*", (m) => {
    if (isEvent(m)) seen.push(m);
  });
  return seen;
}

describe("SSE against a demo gateway", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(["--demo-interval", "50ms", "--history-size", "1000"]);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("receives the snapshot, then live events, through the same store", async () => {
    const c = client({ url: gateway.url });
    const seen = events(c);
    const hello = new Promise<MessageOf<"connection">>((resolve) => c.on("connection", resolve));
    const subscribed = await c.subscribe("*");
    expect(subscribed).toMatchObject({ type: "subscribed", tourId: "*" });
    // The stream's ack was given this request's id.
    expect(subscribed.requestId).toMatch(/^c[0-9a-z]+-\d+$/);
    expect((await hello).encoding).toBe("json");
    expect(c.state.status).toBe("open");
    expect(c.state.transport).toBe("sse");
    await waitFor("the snapshot", () => c.state.tours.size === 3);
    await waitFor("live events", () => seen.length >= 5);
    for (const e of seen) expect(c.state.tours.get(e.data.tourId)?.seq).toBeGreaterThanOrEqual(e.seq);
    // In order, no duplicates.
    const seqs = seen.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it("follows only the tours named (tours=)", async () => {
    const c = client({ url: gateway.url });
    const seen = events(c);
    await c.subscribe("tour_paris");
    await waitFor("paris's snapshot", () => c.state.tours.has("tour_paris"));
    await waitFor("paris's events", () => seen.length >= 3, 15_000);
    expect([...c.state.tours.keys()]).toEqual(["tour_paris"]);
    expect(new Set(seen.map((e) => e.data.tourId))).toEqual(new Set(["tour_paris"]));
  });

  it("resumes after a cut with exactly the events missed", async () => {
    const proxy = await new TcpProxy(gateway.port).listen();
    cleanups.push(() => proxy.close());
    // The reference: a WebSocket client that is never cut.
    const reference = new TourcastClient({ url: gateway.url, WebSocket: NodeWebSocket });
    clients.push(reference);
    const all = events(reference);
    await reference.subscribe("*");

    const c = client({ url: proxy.url, reconnect: { initialDelayMs: 50, jitter: 0 } });
    const seen = events(c);
    const snapshots: MessageOf<"snapshot">[] = [];
    c.on("snapshot", (s) => snapshots.push(s));
    await c.subscribe("*");
    await waitFor("events before the cut", () => seen.length >= 5);

    proxy.pause();
    await waitFor("the client to notice", () => c.state.status === "reconnecting");
    const before = seen.length;
    const lastBefore = seen.at(-1)?.seq ?? 0;
    // Events happen while it is offline.
    await waitFor("events while offline", () => all.filter((e) => e.seq > lastBefore).length >= 10);
    proxy.resume();
    await waitFor("reconnected", () => c.state.status === "open" && c.counters.connections === 2, 10_000);
    await waitFor("events after the cut", () => seen.length >= before + 15);

    // No fresh snapshot (the reconnect resumed with lastEventId): the missed events were replayed.
    expect(snapshots).toHaveLength(1);
    const last = seen.at(-1)?.seq ?? 0;
    await waitFor("the reference to catch up", () => (all.at(-1)?.seq ?? 0) >= last);
    const first = seen[0]?.seq ?? 0;
    const expected = all.filter((e) => e.seq >= first && e.seq <= last).map((e) => `${e.type}:${e.seq}`);
    expect(seen.map((e) => `${e.type}:${e.seq}`)).toEqual(expected);
  });

  /** A client over SSE through a proxy (which records the requests), following tour_paris. */
  async function followingParis() {
    const proxy = await new UpgradeRefusingProxy(gateway.port).listen();
    cleanups.push(() => proxy.close());
    const c = client({ url: proxy.url, sseDebounceMs: 30 });
    const seen = events(c);
    await c.subscribe("tour_paris");
    await waitFor("paris", () => c.state.tours.has("tour_paris"));
    return { proxy, c, seen };
  }

  it("reopens the stream when the subscriptions change, and follows the new set", async () => {
    const { proxy, c, seen } = await followingParis();
    expect(proxy.requests.filter((r) => r.startsWith("/sse"))).toHaveLength(1);

    // Two subscribes at once: one new stream, with both.
    const [rome, london] = await Promise.all([c.subscribe("tour_rome"), c.subscribe("tour_london")]);
    expect(rome).toMatchObject({ type: "subscribed", tourId: "tour_rome" });
    expect(london).toMatchObject({ type: "subscribed", tourId: "tour_london" });
    await waitFor("rome and london", () => c.state.tours.has("tour_rome") && c.state.tours.has("tour_london"));
    const streams = proxy.requests.filter((r) => r.startsWith("/sse"));
    expect(streams).toHaveLength(2);
    expect(new URL(streams[1] ?? "", "http://x").searchParams.get("tours")).toBe("tour_london,tour_paris,tour_rome");
    expect(c.state.status).toBe("open");
    expect(c.counters.connections).toBe(1);

    // Dropping one resumes from the last id seen.
    await c.unsubscribe("tour_paris");
    await waitFor("a third stream", () => proxy.requests.filter((r) => r.startsWith("/sse")).length === 3);
    const third = new URL(proxy.requests.filter((r) => r.startsWith("/sse"))[2] ?? "", "http://x").searchParams;
    expect(third.get("tours")).toBe("tour_london,tour_rome");
    expect(third.get("lastEventId")).toMatch(/^\d+$/);
    const mark = seen.length;
    await waitFor("events after the change", () => seen.length >= mark + 5, 15_000);
    expect(seen.slice(mark).some((e) => e.data.tourId === "tour_paris")).toBe(false);
    expect(c.state.tours.has("tour_paris")).toBe(false);
    await waitFor("one connection on the gateway", async () => (await gateway.health()).connectedClients === 1);
  });

  it("carries nothing once every subscription is dropped, and stays open", async () => {
    const { proxy, c, seen } = await followingParis();
    await c.unsubscribe("tour_paris");
    const streams = () => proxy.requests.filter((r) => r.startsWith("/sse"));
    await waitFor("a second stream", () => streams().length === 2);
    expect(new URL(streams()[1] ?? "", "http://x").searchParams.get("tours")).toBe("");
    await waitFor("one connection on the gateway", async () => (await gateway.health()).connectedClients === 1);
    const mark = seen.length;
    // The demo changes a tour every 50 ms.
    await sleep(1_000);
    expect(seen.slice(mark)).toEqual([]);
    expect([...c.state.tours.keys()], JSON.stringify(proxy.requests)).toEqual([]);
    expect(c.state.status).toBe("open");
  });

  it("refuses rooms, ping and refresh over SSE with a TransportError", async () => {
    const c = client({ url: gateway.url });
    await c.subscribe("tour_paris");
    const room = c.room("support_demo");
    for (const attempt of [room.join(), room.publish("hello"), c.ping()]) {
      const error = await attempt.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TransportError);
      expect(error).toBeInstanceOf(TourcastError);
      expect((error as TransportError).code).toBe("transport_unsupported");
    }
  });
});

describe("auto behind a proxy that refuses WebSocket upgrades", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(["--demo-interval", "50ms"]);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("falls back to SSE after two refused handshakes and receives events", async () => {
    const proxy = await new UpgradeRefusingProxy(gateway.port).listen();
    cleanups.push(() => proxy.close());
    const c = new TourcastClient({
      url: proxy.url,
      transport: "auto",
      WebSocket: NodeWebSocket,
      EventSource,
      reconnect: { initialDelayMs: 20, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(c);
    const seen = events(c);
    await c.subscribe("*");
    expect(proxy.refusedUpgrades).toBeGreaterThanOrEqual(2);
    expect(c.state.transport).toBe("sse");
    await waitFor("the snapshot", () => c.state.tours.size === 3);
    await waitFor("live events", () => seen.length >= 3);
    // The probe on opening was refused too: still SSE.
    await waitFor("the probe", () => proxy.refusedUpgrades === 3);
    expect(c.state.transport).toBe("sse");
    // Straight to the gateway, auto stays on WebSocket.
    const direct = new TourcastClient({ url: gateway.url, transport: "auto", WebSocket: NodeWebSocket, EventSource });
    clients.push(direct);
    await direct.subscribe("*");
    expect(direct.state.transport).toBe("websocket");
    await sleep(10);
  });
});

describe("notifications over SSE, on a gateway reading RabbitMQ with JWT on", () => {
  const SECRET = "test-secret-of-the-sse-suite";
  const rabbit = new RabbitFixture();
  let gateway: Gateway;
  let booking = 0;
  const bookingId = () => `booking_${rabbit.run}_${++booking}`;

  beforeAll(async () => {
    gateway = await startRabbitGateway([...rabbit.args, "--jwt-secret", SECRET]);
  });
  afterAll(async () => {
    await gateway?.stop();
    await rabbit.dispose();
  });

  it("delivers the user's own, and after a cut exactly the ones missed", async () => {
    const proxy = await new TcpProxy(gateway.port).listen();
    cleanups.push(() => proxy.close());
    const alice = client({ url: proxy.url, token: signJwt(SECRET, { sub: "alice", tours: "*" }), reconnect: { initialDelayMs: 50, jitter: 0 } });
    const got: NotificationOf[] = [];
    const stop = alice.notifications((n) => got.push(n));
    expect(await stop.ready).toMatchObject({ type: "subscribed", channel: "notifications" });
    expect(alice.state.transport).toBe("sse");

    const ids = [bookingId(), bookingId(), bookingId(), bookingId()];
    await rabbit.notify("alice", ids[0]!);
    await rabbit.notify("bob", ids[1]!);
    await waitFor("alice's first", () => got.length === 1);

    proxy.pause();
    await waitFor("offline", () => alice.state.status === "reconnecting");
    await rabbit.notify("alice", ids[2]!);
    await rabbit.notify("alice", ids[3]!, "booking-cancelled");
    proxy.resume();
    await waitFor("the two missed", () => got.length === 3, 10_000);
    expect(got.map((n) => [n.kind, n.bookingId])).toEqual([
      ["booking.confirmed", ids[0]],
      ["booking.confirmed", ids[2]],
      ["booking.cancelled", ids[3]],
    ]);
    expect(alice.counters.connections).toBe(2);
    await sleep(300);
    expect(got).toHaveLength(3);
  });

  it("a stream reopened for notifications the token does not allow: the channel is refused, the tours go on", async () => {
    const proxy = await new UpgradeRefusingProxy(gateway.port).listen();
    cleanups.push(() => proxy.close());
    // A token with no user: no notifications (403 for a stream asking for them).
    const c = client({ url: proxy.url, token: signJwt(SECRET, { tours: "*" }) });
    await c.subscribe("tour_paris");
    const stop = c.notifications(() => undefined);
    const error = await stop.ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TourcastError);
    expect((error as TourcastError).code).toBe("forbidden");
    expect(c.channels.has("notifications")).toBe(false);
    await waitFor("a stream without the channel", () => {
      const last = proxy.requests.filter((r) => r.startsWith("/sse")).at(-1) ?? "";
      return proxy.requests.filter((r) => r.startsWith("/sse")).length === 3 && !last.includes("channels=");
    });
    await waitFor("open", () => c.state.status === "open");
    expect(c.counters.connections).toBe(1);
  });
});
