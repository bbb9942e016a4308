import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DecodeError, jsonCodec, type ClientMessage, type ServerMessage } from "../client/index.js";
import { protoCodec } from "../client/proto.js";
import * as pbClient from "../proto/tourcast/v1/client_pb.js";
import * as pb from "../proto/tourcast/v1/server_pb.js";

const json = (m: unknown) => JSON.stringify(m);
const proto = (m: pb.ServerMessage) => toBinary(pb.ServerMessageSchema, m).buffer as ArrayBuffer;

describe("JSON codec", () => {
  it("decodes server messages and refuses what it cannot trust", () => {
    expect(jsonCodec.decode(json({ type: "pong", timestamp: "t" }))).toEqual({ type: "pong", timestamp: "t" });
    for (const bad of [
      "not json",
      json([1]),
      json({ no: "type" }),
      json({ type: "tour.availability.teleported" }),
      json({ type: "tour.availability.updated", seq: 1, data: { tourId: "x" } }),
      json({ type: "tour.availability.updated", seq: -1, data: { tourId: "x", availableSeats: 1 } }),
      json({ type: "snapshot", epoch: "e", tours: [{ tourId: "x" }] }),
    ]) {
      expect(() => jsonCodec.decode(bad), bad).toThrow(DecodeError);
    }
  });

  it("encodes client messages as their JSON view", () => {
    const message: ClientMessage = { type: "subscribe", tourId: "*", since: { epoch: "e", seq: 4 }, requestId: "r1" };
    expect(JSON.parse(jsonCodec.encode(message) as string)).toEqual(message);
  });
});

describe("protobuf codec", () => {
  const cases: Array<[string, pb.ServerMessage, ServerMessage]> = [
    [
      "connection",
      create(pb.ServerMessageSchema, {
        kind: {
          case: "connection",
          value: { clientId: "c", message: "hi", protocol: "tourcast.v1", encoding: pb.Encoding.PROTO, epoch: "e", timestamp: "t" },
        },
      }),
      { type: "connection", clientId: "c", message: "hi", protocol: "tourcast.v1", encoding: "proto", epoch: "e", timestamp: "t" },
    ],
    [
      "snapshot",
      create(pb.ServerMessageSchema, {
        kind: {
          case: "snapshot",
          value: {
            epoch: "e",
            timestamp: "t",
            requestId: "r",
            recovered: false,
            tours: [
              { tourId: "a", tourName: "A", availableSeats: 3, maxGroupSize: 9, seq: 7n, updatedAt: "u" },
              { tourId: "b", availableSeats: 0, seq: 8n, updatedAt: "u" },
            ],
          },
        },
      }),
      {
        type: "snapshot",
        epoch: "e",
        timestamp: "t",
        requestId: "r",
        recovered: false,
        tours: [
          { tourId: "a", tourName: "A", availableSeats: 3, maxGroupSize: 9, seq: 7, updatedAt: "u" },
          { tourId: "b", availableSeats: 0, seq: 8, updatedAt: "u" },
        ],
      },
    ],
    [
      "updated",
      create(pb.ServerMessageSchema, {
        kind: { case: "availabilityUpdated", value: { data: { tourId: "a", availableSeats: 2 }, seq: 9n, timestamp: "t" } },
      }),
      { type: "tour.availability.updated", data: { tourId: "a", availableSeats: 2 }, seq: 9, timestamp: "t" },
    ],
    [
      "low",
      create(pb.ServerMessageSchema, {
        kind: {
          case: "availabilityLow",
          value: { data: { tourId: "a", tourTitle: "A", availableSeats: 2, maxGroupSize: 5, threshold: 3 }, seq: 10n, timestamp: "t", eventId: "ev" },
        },
      }),
      {
        type: "tour.availability.low",
        data: { tourId: "a", tourTitle: "A", availableSeats: 2, maxGroupSize: 5, threshold: 3 },
        seq: 10,
        timestamp: "t",
        eventId: "ev",
      },
    ],
    [
      "error",
      create(pb.ServerMessageSchema, {
        kind: { case: "error", value: { code: pb.ErrorCode.INVALID_MESSAGE, message: "m", path: "/tourId", requestId: "r" } },
      }),
      { type: "error", code: "invalid_message", message: "m", path: "/tourId", requestId: "r" },
    ],
    [
      "refreshed",
      create(pb.ServerMessageSchema, { kind: { case: "refreshed", value: { expiresAt: "2030-01-01T00:00:00Z", requestId: "r" } } }),
      { type: "refreshed", expiresAt: "2030-01-01T00:00:00Z", requestId: "r" },
    ],
    [
      "subscribed",
      create(pb.ServerMessageSchema, { kind: { case: "subscribed", value: { tourId: "*", recovered: true } } }),
      { type: "subscribed", tourId: "*", recovered: true },
    ],
  ];

  it.each(cases)("decodes %s to the same object as its JSON", (_name, message, expected) => {
    const fromProto = protoCodec.decode(proto(message));
    expect(fromProto).toStrictEqual(expected);
    expect(fromProto).toStrictEqual(jsonCodec.decode(json(expected)));
  });

  it("encodes client messages as the ClientMessage envelope", () => {
    const bytes = protoCodec.encode({ type: "subscribe", tourId: "tour_paris", since: { epoch: "e", seq: 41 }, requestId: "r" });
    const decoded = fromBinary(pbClient.ClientMessageSchema, bytes as Uint8Array);
    expect(decoded.kind.case).toBe("subscribe");
    if (decoded.kind.case !== "subscribe") return;
    expect(decoded.kind.value.tourId).toBe("tour_paris");
    expect(decoded.kind.value.requestId).toBe("r");
    expect(decoded.kind.value.since?.seq).toBe(41n);
  });

  it("refuses garbage and text frames", () => {
    expect(() => protoCodec.decode(new Uint8Array([0xff, 0xff, 0xff]))).toThrow(DecodeError);
    expect(() => protoCodec.decode("{}")).toThrow(DecodeError);
    expect(() => protoCodec.decode(new Uint8Array())).toThrow(DecodeError);
  });
});
