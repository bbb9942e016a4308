// A large catalog's `*` snapshot, against a real gateway reading a real
// RabbitMQ stream of 10,000 tours: it arrives in frames of bounded size
// (numbered parts), and the client reassembles them into the same state as
// the raw frames hold, in both encodings, before any later event.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TourcastClient, type ServerMessage } from "../client/index.js";
import { protoCodec } from "../client/proto.js";
import { SnapshotParts } from "../client/snapshots.js";
import { NodeWebSocket, RabbitFixture, startRabbitGateway, waitFor, type Gateway } from "./helpers.js";

const TOURS = 10_000;
const FRAME_LIMIT = 64 * 1024;

describe("SnapshotParts", () => {
  const part = (part: number, parts: number, tourIds: string[]) => ({
    type: "snapshot" as const,
    tours: tourIds.map((tourId, i) => ({ tourId, availableSeats: i, seq: i + 1, updatedAt: "t" })),
    epoch: "e",
    timestamp: "t",
    part,
    parts,
  });

  it("joins consecutive parts into one snapshot, and passes a whole one through", () => {
    const parts = new SnapshotParts();
    expect(parts.add(part(1, 3, ["a", "b"]))).toBeUndefined();
    expect(parts.add(part(2, 3, ["c"]))).toBeUndefined();
    const whole = parts.add(part(3, 3, ["d"]));
    expect(whole?.tours.map((t) => t.tourId)).toEqual(["a", "b", "c", "d"]);
    expect(whole && "part" in whole).toBe(false);
    const single = { type: "snapshot" as const, tours: [], epoch: "e", timestamp: "t" };
    expect(parts.add(single)).toBe(single);
  });

  it("drops a snapshot whose parts come out of sequence", () => {
    const parts = new SnapshotParts();
    parts.add(part(1, 3, ["a"]));
    expect(parts.add(part(3, 3, ["c"]))).toBeUndefined();
    expect(parts.add(part(2, 3, ["b"]))).toBeUndefined();
  });
});

describe("a 10,000-tour snapshot from a real gateway", () => {
  const rabbit = new RabbitFixture();
  let gateway: Gateway;

  beforeAll(async () => {
    const events = Array.from({ length: TOURS }, (_, i) => ({
      eventId: `evt_${i}`,
      tourId: `tour_${String(i).padStart(5, "0")}`,
      tourName: `Tour number ${i}, a name of some length`,
      availableSeats: i % 40,
      maxGroupSize: 40,
      timestamp: "2026-11-23T10:30:00.000Z",
    }));
    // The gateway declares the stream; start it, then fill the stream and
    // let it catch up before the clients come.
    gateway = await startRabbitGateway([...rabbit.args, "--checkpoint-interval", "0s"]);
    await rabbit.publishMany(events);
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await rabbit.dispose();
  });

  /** Every frame a raw socket gets after subscribing to `*`, up to the whole snapshot. */
  async function rawSnapshot(): Promise<{ frames: number[]; tours: Map<string, number> }> {
    const ws = new WebSocket(gateway.url);
    const frames: number[] = [];
    const tours = new Map<string, number>();
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("message", (data: Buffer) => {
        const message = JSON.parse(data.toString()) as ServerMessage;
        if (message.type === "connection") ws.send(JSON.stringify({ type: "subscribe", tourId: "*" }));
        if (message.type !== "snapshot") return;
        frames.push(data.length);
        for (const t of message.tours) tours.set(t.tourId, t.seq);
        if (message.part === undefined || message.part === message.parts) resolve();
      });
    });
    ws.close();
    return { frames, tours };
  }

  it("arrives in bounded frames and reassembles to the same state, in JSON and protobuf", async () => {
    await waitFor("all tours applied", async () => (await rawSnapshot()).tours.size === TOURS, 30_000);

    for (const [round, codec] of [undefined, protoCodec].entries()) {
      const raw = await rawSnapshot();
      expect(raw.frames.length).toBeGreaterThan(1);
      expect(Math.max(...raw.frames)).toBeLessThanOrEqual(FRAME_LIMIT);
      const client = new TourcastClient({ WebSocket: NodeWebSocket, url: gateway.url, ...(codec ? { codec } : {}) });
      const snapshots: number[] = [];
      client.on("snapshot", (m) => snapshots.push(m.tours.length));
      try {
        await client.subscribe("*");
        await waitFor("the snapshot", () => client.state.tours.size === TOURS, 20_000);
        // Handlers saw one snapshot, whole: never a part.
        expect(snapshots).toEqual([TOURS]);
        for (const [tourId, seq] of raw.tours) expect(client.state.tours.get(tourId)?.seq).toBe(seq);

        // A later event follows the whole snapshot.
        await rabbit.publishMany([{ tourId: "tour_00007", availableSeats: 30 + round }]);
        await waitFor("the live event", () => client.state.tours.get("tour_00007")?.availableSeats === 30 + round, 10_000);
      } finally {
        client.close();
      }
    }
  }, 90_000);
});
