// Channels (SPEC "Channels"): the user's own notifications and the admins'
// stats, through the client's `notifications`, `stats` and
// `refreshStats`, against real gateways. Notifications come from RabbitMQ
// (an exchange and a stream of this file's own, published with
// `tourcast publish`), so that recovery with `since` reads the real stream.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  TourcastClient,
  TourcastError,
  type NotificationOf,
  type StatsMessage,
  type TourcastClientOptions,
} from "../client/index.js";
import { protoCodec } from "../client/proto.js";
import {
  NodeWebSocket,
  RabbitFixture,
  signJwt,
  sleep,
  startGateway,
  startRabbitGateway,
  TcpProxy,
  waitFor,
  type Gateway,
} from "./helpers.js";

const SECRET = "test-secret-of-the-channels-suite";
const token = (sub: string, admin = false) => signJwt(SECRET, { sub, tours: "*", ...(admin ? { admin: true } : {}) });

const clients: TourcastClient[] = [];
function client(options: Omit<TourcastClientOptions, "WebSocket">): TourcastClient {
  const c = new TourcastClient({ WebSocket: NodeWebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, ...options });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

describe("channels on a gateway reading RabbitMQ, with JWT on", () => {
  const rabbit = new RabbitFixture();
  let gateway: Gateway;
  let proxy: TcpProxy;
  let booking = 0;
  const bookingId = () => `booking_${rabbit.run}_${++booking}`;

  beforeAll(async () => {
    gateway = await startRabbitGateway([...rabbit.args, "--jwt-secret", SECRET, "--stats-interval", "2s"]);
    proxy = await new TcpProxy(gateway.port).listen();
  });
  afterAll(async () => {
    await proxy?.close();
    await gateway?.stop();
    await rabbit.dispose();
  });

  it("delivers a user's notifications to that user only, narrowed by kind, over JSON and protobuf", async () => {
    const alice = client({ url: gateway.url, token: token("alice") });
    const aliceProto = client({ url: gateway.url, token: token("alice"), codec: protoCodec });
    const bob = client({ url: gateway.url, token: token("bob") });
    const confirmed: NotificationOf<"booking.confirmed">[] = [];
    const all: NotificationOf[] = [];
    const viaProto: NotificationOf[] = [];
    const bobs: NotificationOf[] = [];
    const subs = [
      alice.notifications("booking.confirmed", (n) => confirmed.push(n)),
      alice.notifications((n) => all.push(n)),
      aliceProto.notifications((n) => viaProto.push(n)),
      bob.notifications((n) => bobs.push(n)),
    ];
    const acks = await Promise.all(subs.map((s) => s.ready));
    for (const ack of acks) expect(ack).toMatchObject({ type: "subscribed", channel: "notifications" });
    expect(alice.channels).toEqual(new Set(["notifications"]));

    const ids = [bookingId(), bookingId(), bookingId()];
    await rabbit.notify("alice", ids[0]!);
    await rabbit.notify("bob", ids[1]!);
    await rabbit.notify("alice", ids[2]!, "booking-cancelled");
    await waitFor("alice's two notifications", () => all.length === 2 && viaProto.length === 2 && bobs.length === 1);

    expect(all.map((n) => [n.kind, n.bookingId])).toEqual([
      ["booking.confirmed", ids[0]],
      ["booking.cancelled", ids[2]],
    ]);
    expect(confirmed.map((n) => n.bookingId)).toEqual([ids[0]]);
    expect(bobs.map((n) => n.bookingId)).toEqual([ids[1]]);
    // The same objects whatever the encoding.
    expect(viaProto).toEqual(all);
    const first = all[0]!;
    expect(first).toMatchObject({
      type: "notification",
      tourId: "tour_paris",
      tourName: "Paris City Tour",
      seats: 2,
      message: `booking-confirmed ${ids[0]}`,
    });
    expect(first.seq).toBeLessThan(all[1]!.seq);
    // Nothing else arrives (bob's never reaches alice).
    await sleep(300);
    expect(all).toHaveLength(2);
    expect(bobs).toHaveLength(1);

    // The last listener gone, the channel is unsubscribed.
    for (const s of subs) s();
    await waitFor("unsubscribed", () => alice.channels.size === 0);
    await rabbit.notify("alice", bookingId());
    await sleep(300);
    expect(all).toHaveLength(2);
  });

  it("after a reconnect, resubscribes with since and gets exactly the notifications it missed", async () => {
    const alice = client({ url: proxy.url, token: token("alice") });
    const got: NotificationOf[] = [];
    let gaps = 0;
    const sub = alice.notifications((n) => got.push(n), { onGap: () => (gaps += 1) });
    await sub.ready;
    const before = bookingId();
    await rabbit.notify("alice", before);
    await waitFor("the first notification", () => got.length === 1);

    // The link goes silent: what the gateway sends now is lost.
    proxy.blackhole();
    const missed = [bookingId(), bookingId(), bookingId()];
    for (const id of missed) await rabbit.notify("alice", id);
    await sleep(300);
    expect(got).toHaveLength(1);
    proxy.restore(); // cuts the connection; the client reconnects

    await waitFor("the missed notifications", () => got.length === 4, 10_000);
    expect(alice.counters.connections).toBe(2);
    expect(got.map((n) => n.bookingId)).toEqual([before, ...missed]);
    const seqs = got.map((n) => n.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(gaps).toBe(0);

    // Live again afterwards, with nothing twice.
    const after = bookingId();
    await rabbit.notify("alice", after);
    await waitFor("live again", () => got.length === 5);
    expect(got[4]!.bookingId).toBe(after);
    expect(new Set(got.map((n) => n.notificationId)).size).toBe(5);
  });

  it("misses nothing even when the link drops before the first notification (subscribed carries seq)", async () => {
    const carol = client({ url: proxy.url, token: token("carol") });
    const got: NotificationOf[] = [];
    const sub = carol.notifications((n) => got.push(n));
    const ack = await sub.ready;
    expect(typeof ack.seq).toBe("number");
    proxy.blackhole();
    const missed = [bookingId(), bookingId()];
    for (const id of missed) await rabbit.notify("carol", id);
    await sleep(300);
    expect(got).toHaveLength(0);
    proxy.restore();
    await waitFor("the notifications sent while away", () => got.length === 2, 10_000);
    expect(got.map((n) => n.bookingId)).toEqual(missed);
  });

  it("refuses stats to a non-admin: ready rejects with forbidden and onError is called", async () => {
    const alice = client({ url: gateway.url, token: token("alice") });
    const errors: TourcastError[] = [];
    const sub = alice.stats(() => undefined, { onError: (e) => errors.push(e) });
    const refused = await sub.ready.catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TourcastError);
    expect(refused).toMatchObject({ code: "forbidden", path: "/channel" });
    await waitFor("onError", () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: "forbidden" });
    expect(alice.channels.has("stats")).toBe(false);
    // refreshStats without the subscription is refused too.
    await expect(alice.refreshStats()).rejects.toMatchObject({ code: "forbidden" });
  });

  it("sends an admin stats at once and every interval; refreshStats echoes its requestId", async () => {
    const admin = client({ url: proxy.url, token: token("root", true) });
    const others = [client({ url: gateway.url, token: token("bob") }), client({ url: gateway.url, token: token("bob"), codec: protoCodec })];
    await Promise.all(others.map((c) => c.ping()));
    await admin.ping();
    const samples: { at: number; connection: number; stats: StatsMessage }[] = [];
    const started = Date.now();
    const sub = admin.stats((stats) => samples.push({ at: Date.now(), connection: admin.counters.connections, stats }));
    expect(await sub.ready).toMatchObject({ type: "subscribed", channel: "stats" });
    await waitFor("the first stats", () => samples.length >= 1, 1_500);
    expect(samples[0]!.at - started).toBeLessThan(1_000);
    const first = samples[0]!.stats;
    expect(first.intervalSeconds).toBe(2);
    expect(first.connectedClients).toBeGreaterThanOrEqual(3);
    expect(first.clientsByEncoding.proto).toBeGreaterThanOrEqual(1);
    expect(first.instances).toHaveLength(1);
    expect(first.instances[0]).toMatchObject({ sourceKind: "rabbitmq", sourceState: "connected", leaving: false });

    const refreshed = await admin.refreshStats();
    expect(refreshed.type).toBe("stats");
    expect(refreshed.requestId).toMatch(/.+/);
    expect(admin.latestStats).toBe(refreshed);

    // The next one within the interval (2 s, plus scheduling slack).
    const count = samples.length;
    await waitFor("the interval's stats", () => samples.length > count && samples.at(-1)?.stats.requestId === undefined, 3_000);

    // A reconnect resubscribes: stats flow again without the application asking.
    const cutAt = Date.now();
    proxy.cut();
    await waitFor("stats on the new connection", () => samples.find((s) => s.connection === 2), 5_000);
    const renewed = samples.find((s) => s.connection === 2)!;
    console.log(`stats again ${renewed.at - cutAt} ms after the cut`);
    sub();
  });
});

describe("channels on a gateway with JWT off", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(["--demo-interval", "1h"]);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("refuses notifications without authentication, as a typed error", async () => {
    const c = client({ url: gateway.url });
    const errors: Error[] = [];
    c.onError((e) => errors.push(e));
    // Without onError, the refusal goes to the client's error listeners.
    const sub = c.notifications(() => undefined);
    const refused = await sub.ready.catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TourcastError);
    expect(refused).toMatchObject({ code: "forbidden", path: "/channel" });
    await waitFor("onError", () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: "forbidden" });
    expect(c.channels.size).toBe(0);
  });

  it("refuses stats without --admin-open", async () => {
    const c = client({ url: gateway.url });
    await expect(c.stats(() => undefined, { onError: () => undefined }).ready).rejects.toMatchObject({
      code: "forbidden",
    });
  });
});

describe("stats with JWT off and --admin-open", () => {
  let gateway: Gateway;
  beforeAll(async () => {
    gateway = await startGateway(["--demo-interval", "100ms", "--admin-open", "--stats-interval", "1s"]);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("streams stats to anyone, with the demo feed's event rate", async () => {
    const c = client({ url: gateway.url, codec: protoCodec });
    const samples: StatsMessage[] = [];
    await c.stats((s) => samples.push(s)).ready;
    await waitFor("a stats with events flowing", () => samples.some((s) => s.eventsPerSecond > 0), 4_000);
    const last = samples.at(-1)!;
    expect(last.instances[0]).toMatchObject({ sourceKind: "demo" });
    expect(last.instances[0]!.uptimeSeconds).toBeGreaterThanOrEqual(0);
    const refreshed = await c.refreshStats();
    expect(refreshed.requestId).toMatch(/.+/);
  });

  it("keeps the old adminStats name working as a deprecated alias of stats", async () => {
    const c = client({ url: gateway.url });
    const samples: StatsMessage[] = [];
    expect(await c.adminStats((s) => samples.push(s)).ready).toMatchObject({ channel: "stats" });
    await waitFor("stats through the alias", () => samples.length >= 1, 2_000);
    // The client's own figures are its counters, not the channel.
    expect(c.counters.connections).toBe(1);
  });
});
