// Rooms and viewers in the client without a gateway: the codecs of the new
// messages (JSON and protobuf, both directions), and the room's bookkeeping
// (members, seq dedupe, rejoin with `since`, the publish queue settling each
// promise once) driven through a scripted WebSocket. The same behaviour
// against the real gateway is in rooms.test.ts.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  jsonCodec,
  TourcastClient,
  TourcastError,
  type ClientMessage,
  type MessageOf,
  type ServerMessage,
  type WebSocketLike,
} from "../client/index.js";
import { protoCodec, toProto } from "../client/proto.js";
import * as pbClient from "../proto/tourcast/v1/client_pb.js";
import * as pbRoom from "../proto/tourcast/v1/room_pb.js";
import * as pb from "../proto/tourcast/v1/server_pb.js";
import { sleep, waitFor } from "./helpers.js";

// --- codecs ---------------------------------------------------------------------

describe("codecs of the room and viewers messages", () => {
  const cases: Array<[pb.ServerMessage, ServerMessage]> = [
    [
      create(pb.ServerMessageSchema, {
        kind: {
          case: "joined",
          value: { room: "support_1", members: [{ userId: "alice" }, { userId: "bob" }], memberCount: 2, seq: 41n, recovered: true, requestId: "r1" },
        },
      }),
      { type: "joined", room: "support_1", members: [{ userId: "alice" }, { userId: "bob" }], memberCount: 2, seq: 41, recovered: true, requestId: "r1" },
    ],
    [
      create(pb.ServerMessageSchema, { kind: { case: "left", value: { room: "support_1", requestId: "r2" } } }),
      { type: "left", room: "support_1", requestId: "r2" },
    ],
    [
      create(pb.ServerMessageSchema, {
        kind: {
          case: "roomMessage",
          value: { room: "support_1", from: { userId: "agent" }, text: "Bonjour !", messageId: "m1", seq: 42n, timestamp: "t" },
        },
      }),
      { type: "room.message", room: "support_1", from: { userId: "agent" }, text: "Bonjour !", messageId: "m1", seq: 42, timestamp: "t" },
    ],
    [
      create(pb.ServerMessageSchema, {
        kind: { case: "presence", value: { room: "support_1", userId: "bob", action: pbRoom.PresenceAction.LEFT, memberCount: 1, timestamp: "t" } },
      }),
      { type: "presence", room: "support_1", userId: "bob", action: "left", memberCount: 1, timestamp: "t" },
    ],
    [
      create(pb.ServerMessageSchema, {
        kind: { case: "presence", value: { room: "big", action: pbRoom.PresenceAction.COUNT, memberCount: 1234, timestamp: "t" } },
      }),
      { type: "presence", room: "big", action: "count", memberCount: 1234, timestamp: "t" },
    ],
    [
      create(pb.ServerMessageSchema, { kind: { case: "published", value: { room: "support_1", seq: 43n, messageId: "m2", requestId: "r3" } } }),
      { type: "published", room: "support_1", seq: 43, messageId: "m2", requestId: "r3" },
    ],
    [
      create(pb.ServerMessageSchema, { kind: { case: "viewers", value: { tourId: "tour_paris", count: 5, timestamp: "t" } } }),
      { type: "viewers", tourId: "tour_paris", count: 5, timestamp: "t" },
    ],
    [
      create(pb.ServerMessageSchema, { kind: { case: "error", value: { code: pb.ErrorCode.UNAVAILABLE, message: "broker down", requestId: "r4" } } }),
      { type: "error", code: "unavailable", message: "broker down", requestId: "r4" },
    ],
  ];

  it("decodes each the same from protobuf and from JSON", () => {
    for (const [binary, view] of cases) {
      const fromProto = protoCodec.decode(toBinary(pb.ServerMessageSchema, binary));
      expect(fromProto, view.type).toEqual(view);
      expect(jsonCodec.decode(JSON.stringify(view)), view.type).toEqual(view);
    }
  });

  it("carries data as the object in JSON and as its JSON text in protobuf, both ways", () => {
    const data = { field: "description", value: "Visite guidée ✓", nested: { n: [1, 2] } };
    const bytes = new TextEncoder().encode(JSON.stringify(data));
    const binary = create(pb.ServerMessageSchema, {
      kind: { case: "roomMessage", value: { room: "r", from: { userId: "u" }, text: "edit", messageId: "m", seq: 1n, timestamp: "t", data: bytes } },
    });
    const view = { type: "room.message", room: "r", from: { userId: "u" }, text: "edit", messageId: "m", seq: 1, timestamp: "t", data };
    expect(protoCodec.decode(toBinary(pb.ServerMessageSchema, binary))).toEqual(view);
    expect(jsonCodec.decode(JSON.stringify(view))).toEqual(view);
    for (const bad of ["[1,2]", "not json", "null"]) {
      const m = create(pb.ServerMessageSchema, {
        kind: { case: "roomMessage", value: { room: "r", from: { userId: "u" }, text: "x", messageId: "m", seq: 1n, timestamp: "t", data: new TextEncoder().encode(bad) } },
      });
      expect(() => protoCodec.decode(toBinary(pb.ServerMessageSchema, m)), bad).toThrow(/\/data/);
    }
    const publish = fromBinary(
      pbClient.ClientMessageSchema,
      protoCodec.encode({ type: "publish", room: "r", text: "edit", data }) as Uint8Array,
    );
    expect(publish.kind.case === "publish" && JSON.parse(new TextDecoder().decode(publish.kind.value.data))).toEqual(data);
    const plain = fromBinary(pbClient.ClientMessageSchema, protoCodec.encode({ type: "publish", room: "r", text: "t" }) as Uint8Array);
    expect(plain.kind.case === "publish" && plain.kind.value.data).toBe(undefined);
  });

  it("keeps a room message's data object, and refuses malformed room messages", () => {
    const withData = { type: "room.message", room: "r", from: { userId: "u" }, text: "edit", messageId: "m", seq: 1, timestamp: "t", data: { field: "description", value: "…" } };
    expect(jsonCodec.decode(JSON.stringify(withData))).toEqual(withData);
    for (const bad of [
      { ...withData, data: [1] },
      { ...withData, from: "alice" },
      { ...withData, seq: -1 },
      { type: "presence", room: "r", action: "teleported", memberCount: 1, timestamp: "t" },
      { type: "joined", room: "r", members: [{}], memberCount: 1, seq: 0 },
      { type: "viewers", tourId: "x", count: 1.5, timestamp: "t" },
      { type: "published", room: "r", seq: 1 },
    ]) {
      expect(() => jsonCodec.decode(JSON.stringify(bad)), JSON.stringify(bad)).toThrow();
    }
  });

  it("encodes join, leave, publish and subscribe with viewers in both encodings", () => {
    const messages: ClientMessage[] = [
      { type: "join", room: "support_1", since: { epoch: "e", seq: 9 }, requestId: "r1" },
      { type: "join", room: "support_1" },
      { type: "leave", room: "support_1", requestId: "r2" },
      { type: "publish", room: "support_1", text: "Bonjour !", requestId: "r3" },
      { type: "subscribe", tourId: "tour_paris", viewers: true, requestId: "r4" },
    ];
    for (const message of messages) {
      expect(JSON.parse(jsonCodec.encode(message) as string)).toEqual(message);
      const decoded = fromBinary(pbClient.ClientMessageSchema, protoCodec.encode(message) as Uint8Array);
      expect(decoded.kind.case).toBe(message.type);
      expect(toBinary(pbClient.ClientMessageSchema, decoded)).toEqual(toBinary(pbClient.ClientMessageSchema, toProto(message)));
    }
    const join = fromBinary(pbClient.ClientMessageSchema, protoCodec.encode(messages[0]!) as Uint8Array);
    expect(join.kind.case === "join" && join.kind.value.since?.seq).toBe(9n);
    const subscribe = fromBinary(pbClient.ClientMessageSchema, protoCodec.encode(messages[4]!) as Uint8Array);
    expect(subscribe.kind.case === "subscribe" && subscribe.kind.value.viewers).toBe(true);
  });
});

// --- a scripted gateway ---------------------------------------------------------------

/** The sockets the client opened, newest last; each records what the client sent. */
const sockets: FakeSocket[] = [];

class FakeSocket implements WebSocketLike {
  binaryType = "arraybuffer";
  readonly protocol = "tourcast.v1.json";
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: ClientMessage[] = [];
  open = false;

  constructor(readonly url: string) {
    sockets.push(this);
    setTimeout(() => {
      this.open = true;
      this.onopen?.({});
      this.push({ type: "connection", clientId: `c${sockets.length}`, message: "hi", protocol: "tourcast.v1", encoding: "json", epoch: "E", timestamp: "t" });
    }, 0);
  }
  send(data: string | ArrayBufferView): void {
    if (!this.open) throw new Error("not open");
    const message = JSON.parse(String(data)) as ClientMessage;
    this.sent.push(message);
    // The one request the scripted server answers by itself.
    if (message.type === "leave") {
      setTimeout(() => this.open && this.push({ type: "left", room: message.room, ...(message.requestId === undefined ? {} : { requestId: message.requestId }) }), 0);
    }
  }
  close(code = 1000, reason = ""): void {
    this.drop(code, reason);
  }
  /** The server sends `message`. */
  push(message: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  /** The network fails. */
  drop(code = 1006, reason = "cut"): void {
    if (!this.open) return;
    this.open = false;
    this.onclose?.({ code, reason });
  }
  /** The messages of `type` the client sent. */
  of<T extends ClientMessage["type"]>(type: T): Extract<ClientMessage, { type: T }>[] {
    return this.sent.filter((m): m is Extract<ClientMessage, { type: T }> => m.type === type);
  }
}

const clients: TourcastClient[] = [];
function fakeClient(
  options: { maxQueuedPublishes?: number; requestTimeoutMs?: number; publishRate?: { perSecond: number; burst: number } | false } = {},
): TourcastClient {
  const c = new TourcastClient({
    url: "ws://fake/ws",
    WebSocket: FakeSocket,
    reconnect: { initialDelayMs: 5, maxDelayMs: 10 },
    ...options,
  });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  sockets.splice(0);
});

const current = () => sockets.at(-1)!;
const opened = () => waitFor("an open socket", () => (sockets.at(-1)?.open === true ? sockets.at(-1) : undefined));
const message = (seq: number, text = `m${seq}`, from = "agent"): MessageOf<"room.message"> => ({
  type: "room.message",
  room: "support_1",
  from: { userId: from },
  text,
  messageId: `id${seq}`,
  seq,
  timestamp: "t",
});

/** Joins `support_1` on the current socket, answering with `members` at `seq`. */
async function joined(client: TourcastClient, seq = 10, members = ["alice", "agent"]) {
  const room = client.room("support_1");
  const join = room.join();
  const socket = await opened();
  const sent = await waitFor("join sent", () => socket.of("join").at(-1));
  socket.push({ type: "joined", room: "support_1", members: members.map((userId) => ({ userId })), memberCount: members.length, seq, requestId: sent.requestId! });
  await join;
  return { room, socket };
}

/** Settles each promise into a list, recording how many times each settled (exactly once expected). */
function track<T>(promises: Promise<T>[]) {
  const outcomes: Array<{ ok: T } | { err: TourcastError }> = [];
  promises.forEach((p, i) =>
    p.then(
      (ok) => (outcomes[i] = outcomes[i] === undefined ? { ok } : (() => { throw new Error("settled twice"); })()),
      (err: TourcastError) => (outcomes[i] = outcomes[i] === undefined ? { err } : (() => { throw new Error("settled twice"); })()),
    ),
  );
  return outcomes;
}

describe("a room, through a scripted gateway", () => {
  it("keeps members from joined and presence, and counts from a count-only presence", async () => {
    const client = fakeClient();
    const { room, socket } = await joined(client);
    expect(room.state).toMatchObject({ status: "joined", joined: true, memberCount: 2 });
    expect(room.members.map((m) => m.userId)).toEqual(["alice", "agent"]);
    const presences: string[] = [];
    room.on("presence", (p) => presences.push(`${p.action}:${p.userId ?? ""}:${p.memberCount}`));
    socket.push({ type: "presence", room: "support_1", userId: "bob", action: "joined", memberCount: 3, timestamp: "t" });
    socket.push({ type: "presence", room: "support_1", userId: "alice", action: "left", memberCount: 2, timestamp: "t" });
    socket.push({ type: "presence", room: "support_1", action: "count", memberCount: 250, timestamp: "t" });
    socket.push({ type: "presence", room: "other_room", userId: "eve", action: "joined", memberCount: 9, timestamp: "t" });
    expect(room.members.map((m) => m.userId)).toEqual(["agent", "bob"]);
    expect(room.memberCount).toBe(250);
    expect(presences).toEqual(["joined:bob:3", "left:alice:2", "count::250"]);
  });

  it("delivers each message once: a seq not above the last one is dropped", async () => {
    const client = fakeClient();
    const { room, socket } = await joined(client);
    const seen: number[] = [];
    room.on("message", (m) => seen.push(m.seq));
    const all: string[] = [];
    client.on("room.message", (m) => all.push(m.messageId));
    for (const seq of [3, 5, 5, 4, 8, 8]) socket.push(message(seq));
    expect(seen).toEqual([3, 5, 8]);
    expect(all).toEqual(["id3", "id5", "id8"]);
    expect(room.state.messages.map((m) => m.seq)).toEqual([3, 5, 8]);
  });

  it("rejoins with since = the last message after a cut, or joined.seq when none arrived", async () => {
    const client = fakeClient();
    const { room, socket } = await joined(client, 10);
    socket.drop();
    expect(room.state.status).toBe("rejoining");
    let next = await waitFor("a new socket", () => (sockets.length === 2 && current().open ? current() : undefined));
    let join = await waitFor("rejoin", () => next.of("join").at(-1));
    expect(join.since).toEqual({ epoch: "E", seq: 10 });
    next.push({ type: "joined", room: "support_1", members: [{ userId: "agent" }], memberCount: 1, seq: 12, recovered: true, requestId: join.requestId! });
    next.push(message(11));
    next.push(message(12));
    next.drop();
    next = await waitFor("a third socket", () => (sockets.length === 3 && current().open ? current() : undefined));
    join = await waitFor("second rejoin", () => next.of("join").at(-1));
    expect(join.since).toEqual({ epoch: "E", seq: 12 });
    // Replayed overlap is dropped; what is new is delivered.
    next.push({ type: "joined", room: "support_1", members: [{ userId: "agent" }], memberCount: 1, seq: 13, recovered: true, requestId: join.requestId! });
    next.push(message(12));
    next.push(message(13));
    expect(room.state.messages.map((m) => m.seq)).toEqual([11, 12, 13]);
    expect(room.state).toMatchObject({ joined: true, memberCount: 1 });
  });

  it("queues publishes made offline, sends them after the rejoin's joined, and settles each once", async () => {
    const client = fakeClient();
    const { room, socket } = await joined(client);
    const inFlight = room.publish("sent before the cut");
    await sleep(0);
    expect(socket.of("publish")).toHaveLength(1);
    socket.drop();
    const offline = [room.publish("one"), room.publish("two", { field: "description", value: "x" }), room.publish("three")];
    const outcomes = track([inFlight, ...offline]);
    const next = await waitFor("a new socket", () => (sockets.length === 2 && current().open ? current() : undefined));
    const join = await waitFor("rejoin", () => next.of("join").at(-1));
    // Nothing goes before the room is joined again (the server would refuse it).
    expect(next.of("publish")).toHaveLength(0);
    expect(room.state.queued).toBe(3);
    next.push({ type: "joined", room: "support_1", members: [], memberCount: 1, seq: 20, requestId: join.requestId! });
    const publishes = next.of("publish");
    expect(publishes.map((p) => p.text)).toEqual(["one", "two", "three"]);
    expect((publishes[1] as { data?: unknown }).data).toEqual({ field: "description", value: "x" });
    expect("data" in publishes[0]!).toBe(false);
    next.push({ type: "published", room: "support_1", seq: 21, messageId: "a", requestId: publishes[0]!.requestId! });
    next.push({ type: "error", code: "unavailable", message: "broker did not confirm", requestId: publishes[1]!.requestId! });
    next.push({ type: "published", room: "support_1", seq: 23, messageId: "c", requestId: publishes[2]!.requestId! });
    // Answers repeated by a confused server settle nothing twice.
    next.push({ type: "published", room: "support_1", seq: 21, messageId: "a", requestId: publishes[0]!.requestId! });
    await waitFor("all settled", () => outcomes.filter((o) => o !== undefined).length === 4);
    await sleep(10);
    // The one sent before the cut has an unknown outcome: not resent, rejected `unconfirmed`.
    expect(outcomes[0]).toMatchObject({ err: { code: "unconfirmed" } });
    expect(outcomes[1]).toEqual({ ok: { seq: 21, messageId: "a" } });
    expect(outcomes[2]).toMatchObject({ err: { code: "unavailable", message: "broker did not confirm" } });
    expect((outcomes[2] as { err: TourcastError }).err).toBeInstanceOf(TourcastError);
    expect(outcomes[3]).toEqual({ ok: { seq: 23, messageId: "c" } });
    expect(next.of("publish")).toHaveLength(3);
  });

  it("bounds the offline queue (queue_full) and rejects what waits on leave and on close", async () => {
    const client = fakeClient({ maxQueuedPublishes: 2 });
    const { room, socket } = await joined(client);
    socket.drop();
    const queued = [room.publish("a"), room.publish("b"), room.publish("c")];
    const outcomes = track(queued);
    await waitFor("third refused", () => outcomes[2]);
    expect(outcomes[2]).toMatchObject({ err: { code: "queue_full" } });
    expect(outcomes[0]).toBeUndefined();
    await room.leave();
    await waitFor("both cancelled", () => outcomes[0] !== undefined && outcomes[1] !== undefined);
    expect(outcomes.slice(0, 2)).toMatchObject([{ err: { code: "cancelled" } }, { err: { code: "cancelled" } }]);
    await expect(room.publish("after leave")).rejects.toMatchObject({ code: "not_joined" });
    // Not rejoined after a later reconnect: it was left.
    const before = sockets.length;
    (await opened()).drop();
    const next = await waitFor("a new socket", () => (sockets.length === before + 1 && current().open ? current() : undefined));
    await sleep(20);
    expect(next.of("join")).toHaveLength(0);

    const other = fakeClient();
    const joinedOther = await joined(other);
    joinedOther.socket.drop();
    const pending = track([joinedOther.room.publish("x")]);
    other.close();
    await waitFor("closed", () => pending[0]);
    expect(pending[0]).toMatchObject({ err: { code: "closed" } });
    await expect(joinedOther.room.join()).rejects.toMatchObject({ code: "closed" });
  });

  it("paces publishes to the gateway's bucket: beyond the burst they wait, in order, instead of being refused", async () => {
    const client = fakeClient({ publishRate: { perSecond: 20, burst: 2 } });
    const { room, socket } = await joined(client);
    const start = Date.now();
    const sentAt: number[] = [];
    const publishes = ["a", "b", "c", "d"].map((text) => room.publish(text));
    expect(socket.of("publish").map((p) => p.text)).toEqual(["a", "b"]);
    expect(room.state.queued).toBe(2);
    await waitFor("c", () => socket.of("publish").length === 3, 1_000, 2);
    sentAt.push(Date.now() - start);
    await waitFor("d", () => socket.of("publish").length === 4, 1_000, 2);
    sentAt.push(Date.now() - start);
    expect(socket.of("publish").map((p) => p.text)).toEqual(["a", "b", "c", "d"]);
    // One token every 50 ms (55.6 with the client's 10 % margin) after the burst of two.
    expect(sentAt[0]).toBeGreaterThanOrEqual(40);
    expect(sentAt[1]).toBeGreaterThanOrEqual(90);
    socket.of("publish").forEach((p, i) => socket.push({ type: "published", room: "support_1", seq: 100 + i, messageId: p.text, requestId: p.requestId! }));
    expect((await Promise.all(publishes)).map((r) => r.seq)).toEqual([100, 101, 102, 103]);

    // `publishRate: false` sends at once.
    const eager = fakeClient({ publishRate: false });
    const other = await joined(eager);
    for (let i = 0; i < 15; i++) void other.room.publish(`x${i}`).catch(() => undefined);
    expect(other.socket.of("publish")).toHaveLength(15);
  });

  it("reports a refused join as a typed error and rejects what waited for it", async () => {
    const client = fakeClient();
    const room = client.room("vip_room");
    const join = room.join();
    const early = room.publish("waiting for the join");
    const outcomes = track<unknown>([join, early]);
    const socket = await opened();
    const sent = await waitFor("join sent", () => socket.of("join").at(-1));
    socket.push({ type: "error", code: "forbidden", message: "rooms claim", path: "/room", requestId: sent.requestId! });
    await waitFor("settled", () => outcomes[0] !== undefined && outcomes[1] !== undefined);
    expect(outcomes[0]).toMatchObject({ err: { code: "forbidden", path: "/room" } });
    expect(outcomes[1]).toMatchObject({ err: { code: "forbidden" } });
    expect(room.state).toMatchObject({ status: "idle", joined: false, error: { code: "forbidden" } });
    expect(socket.of("publish")).toHaveLength(0);
  });
});

describe("viewers, through a scripted gateway", () => {
  it("subscribes with viewers: true, delivers counts, renews after a reconnect, and unsubscribes after the last listener", async () => {
    const client = fakeClient();
    const counts: number[] = [];
    const stop = client.viewers("tour_paris", (m) => counts.push(m.count));
    const socket = await opened();
    const sub = await waitFor("subscribe", () => socket.of("subscribe").at(-1));
    expect(sub).toMatchObject({ tourId: "tour_paris", viewers: true });
    socket.push({ type: "subscribed", tourId: "tour_paris", requestId: sub.requestId! });
    await stop.ready;
    socket.push({ type: "viewers", tourId: "tour_paris", count: 3, timestamp: "t" });
    socket.push({ type: "viewers", tourId: "tour_rome", count: 7, timestamp: "t" });
    expect(counts).toEqual([3]);
    expect(client.viewerCount("tour_paris")).toBe(3);
    socket.drop();
    const next = await waitFor("a new socket", () => (sockets.length === 2 && current().open ? current() : undefined));
    const renewed = await waitFor("resubscribe", () => next.of("subscribe").at(-1));
    expect(renewed).toMatchObject({ tourId: "tour_paris", viewers: true });
    stop();
    await waitFor("unsubscribe", () => next.of("unsubscribe").at(-1));
    expect(next.of("unsubscribe")[0]).toMatchObject({ tourId: "tour_paris" });
    expect(client.subscriptions.has("tour_paris")).toBe(false);
  });
});
