// The protobuf codec: binary frames, decoded with the code protoc-gen-es
// generates from proto/ (bindings/proto/), and converted to exactly the same
// typed objects the JSON codec yields. A separate entry point
// (`@tourcast/bindings/proto`) so that JSON-only apps never bundle it.
//
//   import { protoCodec } from "@tourcast/bindings/proto";
//   new TourcastClient({ url, codec: protoCodec });

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type {
  Channel,
  ClientMessage,
  ClientsByEncoding,
  ClientsByTransport,
  Encoding,
  ErrorCode,
  InstanceStats,
  LowAvailability,
  NotificationKind,
  PresenceAction,
  RoomMember,
  ServerMessage,
  SourceState,
  TourAvailability,
  TourState,
  TourSubscribers,
} from "../index.js";
import * as pbClient from "../proto/tourcast/v1/client_pb.js";
import * as pbNotification from "../proto/tourcast/v1/notification_pb.js";
import * as pbRoom from "../proto/tourcast/v1/room_pb.js";
import * as pb from "../proto/tourcast/v1/server_pb.js";
import * as pbStats from "../proto/tourcast/v1/stats_pb.js";
import type * as pbTour from "../proto/tourcast/v1/tour_pb.js";
import { DecodeError, type Codec, type Frame } from "./codec.js";
import { withOptional } from "./store.js";

// Record types make both tables exhaustive: a code added to proto/ breaks
// the build here until it is mapped.
const ERROR_CODES: Record<ErrorCode, pb.ErrorCode> = {
  invalid_message: pb.ErrorCode.INVALID_MESSAGE,
  unknown_type: pb.ErrorCode.UNKNOWN_TYPE,
  unsupported_encoding: pb.ErrorCode.UNSUPPORTED_ENCODING,
  rate_limited: pb.ErrorCode.RATE_LIMITED,
  forbidden: pb.ErrorCode.FORBIDDEN,
  too_large: pb.ErrorCode.TOO_LARGE,
  internal: pb.ErrorCode.INTERNAL,
  unauthorized: pb.ErrorCode.UNAUTHORIZED,
  unavailable: pb.ErrorCode.UNAVAILABLE,
};
const ENCODINGS: Record<Encoding, pb.Encoding> = {
  json: pb.Encoding.JSON,
  proto: pb.Encoding.PROTO,
};

const CHANNELS: Record<Channel, pbClient.Channel> = {
  notifications: pbClient.Channel.NOTIFICATIONS,
  stats: pbClient.Channel.STATS,
};
const NOTIFICATION_KINDS: Record<NotificationKind, pbNotification.NotificationKind> = {
  "booking.confirmed": pbNotification.NotificationKind.BOOKING_CONFIRMED,
  "booking.cancelled": pbNotification.NotificationKind.BOOKING_CANCELLED,
};
const PRESENCE_ACTIONS: Record<PresenceAction, pbRoom.PresenceAction> = {
  joined: pbRoom.PresenceAction.JOINED,
  left: pbRoom.PresenceAction.LEFT,
  count: pbRoom.PresenceAction.COUNT,
};
const SOURCE_STATES: Record<SourceState, pbStats.SourceState> = {
  starting: pbStats.SourceState.STARTING,
  connected: pbStats.SourceState.CONNECTED,
  reconnecting: pbStats.SourceState.RECONNECTING,
  stopped: pbStats.SourceState.STOPPED,
};

function reverse<K extends string, V>(table: Record<K, V>): Map<V, K> {
  const out = new Map<V, K>();
  for (const key of Object.keys(table) as K[]) out.set(table[key], key);
  return out;
}
const errorCodeOf = reverse(ERROR_CODES);
const encodingOf = reverse(ENCODINGS);
const channelOf = reverse(CHANNELS);
const notificationKindOf = reverse(NOTIFICATION_KINDS);
const sourceStateOf = reverse(SOURCE_STATES);
const presenceActionOf = reverse(PRESENCE_ACTIONS);
const member = (m: pbRoom.RoomMember): RoomMember => ({ userId: m.userId });

// A `(json_object)` field (a room message's `data`) is the object in the
// JSON view and its JSON text (UTF-8) in protobuf.
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const jsonObjectBytes = (object: { [key: string]: unknown } | undefined): Uint8Array | undefined =>
  object === undefined ? undefined : utf8Encoder.encode(JSON.stringify(object));
function jsonObject(bytes: Uint8Array | undefined, what: string): { [key: string]: unknown } | undefined {
  if (bytes === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(utf8Decoder.decode(bytes));
  } catch (e) {
    throw new DecodeError(`${what}: not JSON text (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new DecodeError(`${what}: not a JSON object`);
  return value as { [key: string]: unknown };
}

/** The channel a reply names, if it names a known one. */
const channel = (c: pbClient.Channel | undefined): Channel | undefined => (c === undefined ? undefined : channelOf.get(c));

function known<V, K>(table: Map<V, K>, value: V, what: string): K {
  const key = table.get(value);
  if (key === undefined) throw new DecodeError(`${what}: unknown value ${String(value)}`);
  return key;
}

const byEncoding = (c: pbStats.ClientsByEncoding | undefined): ClientsByEncoding => ({
  json: c?.json ?? 0,
  proto: c?.proto ?? 0,
});
const byTransport = (c: pbStats.ClientsByTransport | undefined): ClientsByTransport | undefined =>
  c === undefined ? undefined : { websocket: c.websocket, sse: c.sse };
const tourSubscribers = (t: pbStats.TourSubscribers): TourSubscribers => ({ tourId: t.tourId, subscribers: t.subscribers });
const instanceStats = (i: pbStats.InstanceStats): InstanceStats =>
  withOptional(
    {
      instanceId: i.instanceId,
      connectedClients: i.connectedClients,
      clientsByEncoding: byEncoding(i.clientsByEncoding),
      eventsPerSecond: i.eventsPerSecond,
      deliveriesPerSecond: i.deliveriesPerSecond,
      slowClientDisconnects: u64(i.slowClientDisconnects),
      sourceKind: i.sourceKind,
      sourceState: sourceStateOf.get(i.sourceState) ?? "starting",
      uptimeSeconds: u64(i.uptimeSeconds),
      topTours: i.topTours.map(tourSubscribers),
      reportedAt: i.reportedAt,
      leaving: i.leaving,
    },
    { clientsByTransport: byTransport(i.clientsByTransport) },
  );

/** u64 as a JS number; sequence numbers stay far below 2^53. */
const u64 = (value: bigint): number => Number(value);

const tourState = (t: pbTour.TourState): TourState =>
  withOptional(
    { tourId: t.tourId, availableSeats: t.availableSeats, seq: u64(t.seq), updatedAt: t.updatedAt },
    { tourName: t.tourName, maxGroupSize: t.maxGroupSize },
  );

const tourAvailability = (t: pb.TourAvailability): TourAvailability =>
  withOptional(
    { tourId: t.tourId, availableSeats: t.availableSeats },
    { tourName: t.tourName, maxGroupSize: t.maxGroupSize },
  );

const lowAvailability = (t: pb.LowAvailability): LowAvailability =>
  withOptional(
    { tourId: t.tourId, tourTitle: t.tourTitle, availableSeats: t.availableSeats, threshold: t.threshold },
    { maxGroupSize: t.maxGroupSize },
  );

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new DecodeError(`${what} is required`);
  return value;
}

/** The JSON view of a decoded protobuf server message. */
export function fromProto(message: pb.ServerMessage): ServerMessage {
  const kind = message.kind;
  switch (kind.case) {
    case "connection": {
      const m = kind.value;
      return {
        type: "connection",
        clientId: m.clientId,
        message: m.message,
        protocol: m.protocol,
        encoding: encodingOf.get(m.encoding) ?? "proto",
        epoch: m.epoch,
        timestamp: m.timestamp,
      };
    }
    case "subscribed":
      return withOptional(
        { type: "subscribed" },
        {
          tourId: kind.value.tourId,
          channel: channel(kind.value.channel),
          recovered: kind.value.recovered,
          requestId: kind.value.requestId,
        },
      );
    case "unsubscribed":
      return withOptional(
        { type: "unsubscribed" },
        { tourId: kind.value.tourId, channel: channel(kind.value.channel), requestId: kind.value.requestId },
      );
    case "snapshot": {
      const m = kind.value;
      return withOptional(
        { type: "snapshot", tours: m.tours.map(tourState), epoch: m.epoch, timestamp: m.timestamp },
        { recovered: m.recovered, requestId: m.requestId, part: m.part, parts: m.parts },
      );
    }
    case "availabilityUpdated": {
      const m = kind.value;
      return withOptional(
        {
          type: "tour.availability.updated",
          data: tourAvailability(required(m.data, "/data")),
          seq: u64(m.seq),
          timestamp: m.timestamp,
        },
        { eventId: m.eventId },
      );
    }
    case "availabilityLow": {
      const m = kind.value;
      return withOptional(
        {
          type: "tour.availability.low",
          data: lowAvailability(required(m.data, "/data")),
          seq: u64(m.seq),
          timestamp: m.timestamp,
        },
        { eventId: m.eventId },
      );
    }
    case "pong":
      return withOptional({ type: "pong", timestamp: kind.value.timestamp }, { requestId: kind.value.requestId });
    case "error": {
      const m = kind.value;
      return withOptional(
        { type: "error", code: errorCodeOf.get(m.code) ?? "internal", message: m.message },
        { path: m.path, requestId: m.requestId },
      );
    }
    case "refreshed":
      return withOptional(
        { type: "refreshed", expiresAt: kind.value.expiresAt },
        { requestId: kind.value.requestId },
      );
    case "notification": {
      const m = kind.value;
      return {
        type: "notification",
        kind: known(notificationKindOf, m.kind, "/kind"),
        notificationId: m.notificationId,
        bookingId: m.bookingId,
        tourId: m.tourId,
        tourName: m.tourName,
        seats: m.seats,
        message: m.message,
        seq: u64(m.seq),
        timestamp: m.timestamp,
      };
    }
    case "stats": {
      const m = kind.value;
      return withOptional(
        {
          type: "stats",
          connectedClients: m.connectedClients,
          clientsByEncoding: byEncoding(m.clientsByEncoding),
          eventsPerSecond: m.eventsPerSecond,
          deliveriesPerSecond: m.deliveriesPerSecond,
          slowClientDisconnects: u64(m.slowClientDisconnects),
          instances: m.instances.map(instanceStats),
          topTours: m.topTours.map(tourSubscribers),
          intervalSeconds: m.intervalSeconds,
          timestamp: m.timestamp,
        },
        { requestId: m.requestId, clientsByTransport: byTransport(m.clientsByTransport) },
      );
    }
    case "joined": {
      const m = kind.value;
      return withOptional(
        { type: "joined", room: m.room, members: m.members.map(member), memberCount: m.memberCount, seq: u64(m.seq) },
        { recovered: m.recovered, requestId: m.requestId },
      );
    }
    case "left":
      return withOptional({ type: "left", room: kind.value.room }, { requestId: kind.value.requestId });
    case "roomMessage": {
      const m = kind.value;
      return withOptional(
        {
          type: "room.message",
          room: m.room,
          from: member(required(m.from, "/from")),
          text: m.text,
          messageId: m.messageId,
          seq: u64(m.seq),
          timestamp: m.timestamp,
        },
        { data: jsonObject(m.data, "/data") },
      );
    }
    case "presence": {
      const m = kind.value;
      return withOptional(
        {
          type: "presence",
          room: m.room,
          action: known(presenceActionOf, m.action, "/action"),
          memberCount: m.memberCount,
          timestamp: m.timestamp,
        },
        { userId: m.userId },
      );
    }
    case "published": {
      const m = kind.value;
      return withOptional(
        { type: "published", room: m.room, seq: u64(m.seq), messageId: m.messageId },
        { requestId: m.requestId },
      );
    }
    case "viewers": {
      const m = kind.value;
      return { type: "viewers", tourId: m.tourId, count: m.count, timestamp: m.timestamp };
    }
    case undefined:
      throw new DecodeError("the message sets no variant this client knows");
  }
}

/** The protobuf form of a client message. */
export function toProto(message: ClientMessage): pbClient.ClientMessage {
  switch (message.type) {
    case "ping":
      return create(pbClient.ClientMessageSchema, {
        kind: { case: "ping", value: { requestId: message.requestId } },
      });
    case "subscribe": {
      const since = message.since;
      return create(pbClient.ClientMessageSchema, {
        kind: {
          case: "subscribe",
          value: {
            tourId: message.tourId,
            channel: message.channel === undefined ? undefined : CHANNELS[message.channel],
            requestId: message.requestId,
            since: since === undefined ? undefined : { epoch: since.epoch, seq: BigInt(since.seq) },
            viewers: message.viewers,
          },
        },
      });
    }
    case "unsubscribe":
      return create(pbClient.ClientMessageSchema, {
        kind: {
          case: "unsubscribe",
          value: {
            tourId: message.tourId,
            channel: message.channel === undefined ? undefined : CHANNELS[message.channel],
            requestId: message.requestId,
          },
        },
      });
    case "refresh":
      return create(pbClient.ClientMessageSchema, {
        kind: { case: "refresh", value: { token: message.token, requestId: message.requestId } },
      });
    case "refreshStats":
      return create(pbClient.ClientMessageSchema, {
        kind: { case: "refreshStats", value: { requestId: message.requestId } },
      });
    case "join": {
      const since = message.since;
      return create(pbClient.ClientMessageSchema, {
        kind: {
          case: "join",
          value: {
            room: message.room,
            requestId: message.requestId,
            since: since === undefined ? undefined : { epoch: since.epoch, seq: BigInt(since.seq) },
          },
        },
      });
    }
    case "leave":
      return create(pbClient.ClientMessageSchema, {
        kind: { case: "leave", value: { room: message.room, requestId: message.requestId } },
      });
    case "publish":
      return create(pbClient.ClientMessageSchema, {
        kind: {
          case: "publish",
          value: { room: message.room, text: message.text, requestId: message.requestId, data: jsonObjectBytes(message.data) },
        },
      });
  }
}

function bytesOf(frame: Frame): Uint8Array {
  if (typeof frame === "string") throw new DecodeError("a protobuf frame must be binary");
  if (ArrayBuffer.isView(frame)) return new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
  return new Uint8Array(frame);
}

/** Protobuf in binary frames (`Sec-WebSocket-Protocol: tourcast.v1.proto`). */
export const protoCodec: Codec = {
  encoding: "proto",
  subprotocol: "tourcast.v1.proto",
  encode: (message) => toBinary(pbClient.ClientMessageSchema, toProto(message)),
  decode(frame) {
    let decoded: pb.ServerMessage;
    try {
      decoded = fromBinary(pb.ServerMessageSchema, bytesOf(frame));
    } catch (e) {
      if (e instanceof DecodeError) throw e;
      throw new DecodeError(`malformed protobuf: ${e instanceof Error ? e.message : String(e)}`);
    }
    return fromProto(decoded);
  },
};
