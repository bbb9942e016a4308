// Rooms and viewers (SPEC "Rooms", "Viewers") through `client.room(name)`
// and `client.viewers(tourId)`, against two real gateways reading the same
// exchange and stream of this file's own on the real RabbitMQ, with JWT on
// (the `rooms` claim; `from` is the token's `sub`). Each client reaches its
// gateway through a TCP proxy, so that a test can cut its link or keep it
// offline.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  TourcastClient,
  TourcastError,
  type Joined,
  type Presence,
  type PublishResult,
  type RoomMessageOf,
  type TourcastClientOptions,
} from "../client/index.js";
import { protoCodec } from "../client/proto.js";
import { NodeWebSocket, RabbitFixture, signJwt, sleep, startRabbitGateway, TcpProxy, waitFor, type Gateway } from "./helpers.js";

const SECRET = "test-secret-of-the-rooms-suite";

const clients: TourcastClient[] = [];
function client(options: Omit<TourcastClientOptions, "WebSocket">): TourcastClient {
  const c = new TourcastClient({ WebSocket: NodeWebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, ...options });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

/** Everything a room delivers to one client, in order. */
function record(c: TourcastClient, name: string) {
  const room = c.room(name);
  const messages: RoomMessageOf[] = [];
  const presence: Presence[] = [];
  const joins: Joined[] = [];
  room.on("message", (m) => messages.push(m));
  room.on("presence", (p) => presence.push(p));
  room.on("joined", (j) => joins.push(j));
  return { room, messages, presence, joins, texts: () => messages.map((m) => m.text) };
}

describe("rooms on two gateways sharing RabbitMQ, with JWT on", () => {
  const rabbit = new RabbitFixture();
  let a: Gateway;
  let b: Gateway;
  let proxyA: TcpProxy;
  let proxyB: TcpProxy;
  let n = 0;
  const roomName = () => `support_${rabbit.run}_${++n}`;
  const token = (sub: string, rooms: string[] | "*") => signJwt(SECRET, { sub, tours: "*", rooms });

  beforeAll(async () => {
    const args = [...rabbit.args, "--jwt-secret", SECRET, "--stats-interval", "1s"];
    [a, b] = await Promise.all([startRabbitGateway(args), startRabbitGateway(args)]);
    proxyA = await new TcpProxy(a.port).listen();
    proxyB = await new TcpProxy(b.port).listen();
  }, 60_000);
  afterAll(async () => {
    await proxyA?.close();
    await proxyB?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await rabbit.dispose();
  });

  it("two users on two instances chat: every message once, in the same order and seq, from the token's sub; presence crosses; a late joiner gets the history", async () => {
    const room = roomName();
    const alice = record(client({ url: proxyA.url, token: token("alice", [room]) }), room);
    const bob = record(client({ url: proxyB.url, token: token("bob", "*") }), room);

    const aliceJoined = await alice.room.join();
    expect(aliceJoined).toMatchObject({ type: "joined", room, memberCount: 1, members: [{ userId: "alice" }] });
    await bob.room.join();
    // Bob's arrival reaches alice on the other instance, and both lists agree.
    await waitFor("alice sees bob", () => alice.room.members.some((m) => m.userId === "bob"), 5_000);
    expect(alice.presence.at(-1)).toMatchObject({ room, userId: "bob", action: "joined", memberCount: 2 });
    // Bob's `joined` lists alice once B has heard from A over the peer link
    // (right after both started, that may be a moment later, then by presence).
    await waitFor("bob sees alice", () => bob.room.memberCount === 2, 5_000);
    expect(bob.room.members.map((m) => m.userId).sort()).toEqual(["alice", "bob"]);

    const sent: PublishResult[] = [];
    sent.push(await alice.room.publish("Bonjour, I booked the Paris tour"));
    sent.push(await bob.room.publish("Hello alice, how can I help?", { field: "status", value: "answered" }));
    sent.push(await alice.room.publish("Can I add a seat?"));
    expect(sent[0]!.seq).toBeLessThan(sent[1]!.seq);
    expect(sent[1]!.seq).toBeLessThan(sent[2]!.seq);

    await waitFor("3 messages on both", () => alice.messages.length >= 3 && bob.messages.length >= 3);
    await sleep(300); // anything duplicated would arrive meanwhile
    for (const who of [alice, bob]) {
      expect(who.messages.map((m) => [m.seq, m.messageId, m.from.userId, m.text])).toEqual([
        [sent[0]!.seq, sent[0]!.messageId, "alice", "Bonjour, I booked the Paris tour"],
        [sent[1]!.seq, sent[1]!.messageId, "bob", "Hello alice, how can I help?"],
        [sent[2]!.seq, sent[2]!.messageId, "alice", "Can I add a seat?"],
      ]);
    }

    // A late joiner, on either instance, starts with the recent messages.
    const carol = record(client({ url: a.url, token: token("carol", [room]) }), room);
    const carolJoined = await carol.room.join();
    expect(carolJoined.memberCount).toBe(3);
    await waitFor("carol's history", () => carol.messages.length >= 3);
    expect(carol.messages.map((m) => m.seq)).toEqual(sent.map((s) => s.seq));

    // Bob leaves: alice, on the other instance, sees it.
    await bob.room.leave();
    await waitFor("alice sees bob leave", () => !alice.room.members.some((m) => m.userId === "bob"), 5_000);
    expect(alice.presence.at(-1)).toMatchObject({ userId: "bob", action: "left", memberCount: 2 });
    expect(bob.room.state).toMatchObject({ status: "idle", joined: false });
  });

  it("a protobuf client gets the same objects as a JSON client, structured data included", async () => {
    const room = roomName();
    const json = record(client({ url: a.url, token: token("dan", [room]) }), room);
    const proto = record(client({ url: b.url, token: token("eve", [room]), codec: protoCodec }), room);
    await json.room.join();
    await proto.room.join();
    const edit = { field: "description", value: "Visite guidée du Louvre ✓", at: [3, 14] };
    const result = await proto.room.publish("sent over protobuf", edit);
    await json.room.publish("sent over JSON", { field: "title", value: "Paris" });
    await waitFor("both on both", () => json.messages.length === 2 && proto.messages.length === 2);
    expect(proto.messages).toEqual(json.messages);
    expect(json.messages[0]).toMatchObject({ seq: result.seq, messageId: result.messageId, from: { userId: "eve" }, data: edit });
    expect(proto.messages[1]!.data).toEqual({ field: "title", value: "Paris" });
  });

  it("measures publish → delivery on the other instance, and publish → published", async () => {
    const room = roomName();
    const sender = record(client({ url: a.url, token: token("sender", [room]) }), room);
    const reader = client({ url: b.url, token: token("reader", [room]) });
    const arrived = new Map<string, number>();
    reader.room(room).on("message", (m) => arrived.set(m.text, performance.now()));
    await sender.room.join();
    await reader.room(room).join();
    const delivery: number[] = [];
    const acked: number[] = [];
    for (let i = 0; i < 30; i++) {
      // Under the publish bucket (PUBLISH_RATE 5/s): one every 210 ms.
      if (i > 0) await sleep(210);
      const text = `ping ${i}`;
      const start = performance.now();
      await sender.room.publish(text);
      acked.push(performance.now() - start);
      await waitFor(text, () => arrived.has(text), 5_000, 1);
      delivery.push(arrived.get(text)! - start);
    }
    const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!.toFixed(1);
    console.log(
      `room publish (instance A) → room.message (instance B), 30 sequential, debug build: p50 ${pct(delivery, 50)} ms, p90 ${pct(delivery, 90)} ms, max ${pct(delivery, 100)} ms; publish → published p50 ${pct(acked, 50)} ms`,
    );
    expect(arrived.size).toBe(30);
  });

  it("rejoins with since after a cut link and gets exactly the messages missed, once", async () => {
    const room = roomName();
    const alice = record(client({ url: proxyA.url, token: token("alice", [room]) }), room);
    const bob = record(client({ url: b.url, token: token("bob", [room]) }), room);
    await alice.room.join();
    await bob.room.join();
    for (const text of ["one", "two"]) await bob.room.publish(text);
    await waitFor("alice has two", () => alice.messages.length === 2);

    proxyA.pause();
    await waitFor("alice offline", () => alice.room.state.status === "rejoining");
    const missed: number[] = [];
    for (const text of ["three", "four", "five"]) missed.push((await bob.room.publish(text)).seq);
    proxyA.resume();

    await waitFor("alice rejoined", () => alice.joins.length === 2 && alice.room.joined, 10_000);
    await waitFor("alice caught up", () => alice.messages.length >= 5);
    await bob.room.publish("six");
    await waitFor("the live one too", () => alice.messages.length >= 6);
    await sleep(300);
    expect(alice.texts()).toEqual(["one", "two", "three", "four", "five", "six"]);
    expect(alice.messages.slice(2, 5).map((m) => m.seq)).toEqual(missed);
    expect(alice.joins[1]!.recovered).toBe(true);
    expect(alice.messages.map((m) => m.seq)).toEqual(bob.messages.map((m) => m.seq));
  });

  it("queues publishes made offline, sends them after the rejoin, and settles each promise once", async () => {
    const room = roomName();
    const alice = record(client({ url: proxyA.url, token: token("alice", [room]) }), room);
    const bob = record(client({ url: b.url, token: token("bob", [room]) }), room);
    await alice.room.join();
    await bob.room.join();

    proxyA.pause();
    await waitFor("alice offline", () => alice.room.state.status === "rejoining");
    // More than the gateway's publish burst (10): the flush is paced, so none is refused.
    const texts = Array.from({ length: 14 }, (_, i) => `queued ${i + 1}`);
    const settled: Array<string> = [];
    const offline = texts.map((text) =>
      alice.room.publish(text).then(
        (r) => {
          settled.push(`ok ${text}`);
          return r;
        },
        (e: unknown) => {
          settled.push(`error ${text} ${(e as TourcastError).code}`);
          throw e;
        },
      ),
    );
    expect(alice.room.state.queued).toBe(14);
    await sleep(300);
    expect(settled).toEqual([]);
    expect(bob.messages).toEqual([]);
    proxyA.resume();

    const results = await Promise.all(offline);
    await waitFor("bob got them", () => bob.messages.length >= 14);
    await sleep(300);
    // Each settled once, each delivered once at the seq its promise gave.
    expect([...settled].sort()).toEqual(texts.map((t) => `ok ${t}`).sort());
    expect(bob.messages.map((m) => [m.seq, m.text, m.from.userId]).sort()).toEqual(
      results.map((r, i) => [r.seq, texts[i]!, "alice"]).sort(),
    );
    expect(alice.room.state.queued).toBe(0);
    // And in the order they were written: one connection's publishes keep their order in the stream.
    expect(bob.texts()).toEqual(texts);
    expect(results.map((r) => r.seq)).toEqual([...results.map((r) => r.seq)].sort((x, y) => x - y));
  });

  it("refuses with typed errors: outside the rooms claim, an empty text, publishing before joining", async () => {
    const room = roomName();
    const mallory = client({ url: a.url, token: token("mallory", ["some_other_room"]) });
    const refused = mallory.room(room).join();
    await expect(refused).rejects.toBeInstanceOf(TourcastError);
    await expect(refused).rejects.toMatchObject({ code: "forbidden" });
    expect(mallory.room(room).state).toMatchObject({ status: "idle", error: { code: "forbidden" } });

    const alice = client({ url: a.url, token: token("alice", [room]) });
    await expect(alice.room(room).publish("too early")).rejects.toMatchObject({ code: "not_joined" });
    await alice.room(room).join();
    await expect(alice.room(room).publish("")).rejects.toMatchObject({ code: "invalid_message", path: "/text" });
    // The room still works after a refused publish.
    await expect(alice.room(room).publish("fine")).resolves.toMatchObject({ seq: expect.any(Number) });
    // Beyond the gateway's publish bucket (burst 10, 5/s), unpaced: rate_limited, the others go through.
    const eager = client({ url: a.url, token: token("eager", [room]), publishRate: false });
    await eager.room(room).join();
    const burst = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => eager.room(room).publish(`burst ${i}`)));
    const refusedCodes = burst.flatMap((r) => (r.status === "rejected" ? [(r.reason as TourcastError).code] : []));
    expect(refusedCodes.length).toBeGreaterThan(0);
    expect(new Set(refusedCodes)).toEqual(new Set(["rate_limited"]));
    expect(burst.filter((r) => r.status === "fulfilled").length).toBeGreaterThanOrEqual(9);
    // Paced (the default), the same burst all goes through, in order.
    const paced = await Promise.all(Array.from({ length: 12 }, (_, i) => alice.room(room).publish(`paced ${i}`)));
    expect(paced.map((r) => r.seq)).toEqual([...paced.map((r) => r.seq)].sort((x, y) => x - y));
  });

  it("counts viewers of a tour across instances", async () => {
    const tour = `tour_viewers_${rabbit.run}`;
    const one = client({ url: a.url, token: token("v1", []) });
    const two = client({ url: b.url, token: token("v2", []) });
    const seenByOne: number[] = [];
    const stopOne = one.viewers(tour, (m) => seenByOne.push(m.count));
    await stopOne.ready;
    await waitFor("one viewer", () => seenByOne.at(-1) === 1, 5_000);
    const stopTwo = two.viewers(tour, () => undefined);
    await stopTwo.ready;
    await waitFor("two viewers, across instances", () => seenByOne.at(-1) === 2, 5_000);
    expect(one.viewerCount(tour)).toBe(2);
    two.close();
    await waitFor("back to one", () => seenByOne.at(-1) === 1, 5_000);
    stopOne();
  });
});

describe("a publish the broker cannot take", () => {
  const rabbit = new RabbitFixture();
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startRabbitGateway([...rabbit.args, "--rooms-open"]);
  }, 60_000);
  afterAll(async () => {
    await gateway?.stop();
    await rabbit.dispose().catch(() => undefined);
  });

  it("rejects with unavailable, delivers it to nobody, and the room goes on", async () => {
    const room = `support_${rabbit.run}_broker`;
    const sender = record(client({ url: gateway.url }), room);
    const reader = record(client({ url: gateway.url }), room);
    await sender.room.join();
    await reader.room.join();
    await sender.room.publish("before");
    await waitFor("reader has it", () => reader.messages.length === 1);

    // The exchange goes away under the gateway: its writes cannot be routed.
    const amqp = (await import("amqplib")).default;
    const connection = await amqp.connect(process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672");
    try {
      const channel = await connection.createChannel();
      await channel.deleteExchange(rabbit.exchange);
    } finally {
      await connection.close();
    }
    const refused = sender.room.publish("lost in the void");
    await expect(refused).rejects.toBeInstanceOf(TourcastError);
    await expect(refused).rejects.toMatchObject({ code: "unavailable" });
    await sleep(500);
    expect(reader.texts()).toEqual(["before"]);
    expect(sender.texts()).toEqual(["before"]);
    expect(sender.room.state).toMatchObject({ joined: true, queued: 0 });
  });
});
