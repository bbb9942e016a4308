// A strict TypeScript consumer of the generated bindings, as a frontend team
// would write one: the SPEC's example messages typed as written, narrowing on
// `type`, and wrong shapes that must NOT compile (each `@ts-expect-error`
// fails the build if the line below it ever type-checks).
//
// Run: npm ci && npm run types   (tsc --strict --noEmit)

import type {
  ClientMessage,
  ErrorCode,
  NotificationKind,
  ServerMessage,
  TourState,
} from "../../bindings/index";

// --- client → server, from the SPEC ---------------------------------------

export const clientExamples: ClientMessage[] = [
  { type: "ping" },
  { type: "ping", requestId: "r1" },
  { type: "subscribe", tourId: "tour_paris" },
  { type: "subscribe", tourId: "*" },
  { type: "subscribe", tourId: "tour_paris", since: { epoch: "e1736330000", seq: 41 } },
  { type: "subscribe", tourId: "tour_paris", since: { epoch: "e1736330000", seq: 41 }, requestId: "sub-1" },
  { type: "unsubscribe", tourId: "tour_paris" },
  { type: "refresh", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJl", requestId: "rf-1" },
  // SPEC "Channels"
  { type: "subscribe", channel: "notifications" },
  { type: "subscribe", channel: "notifications", since: { epoch: "rmq:tourcast.availability", seq: 812 } },
  { type: "subscribe", channel: "stats", requestId: "s-1" },
  { type: "unsubscribe", channel: "stats" },
  { type: "refreshStats", requestId: "r1" },
];

// JSON.parse output, e.g. what `wscat` would send, assigned after a check.
const fromWire: unknown = JSON.parse('{"type":"ping"}');
export const parsed = fromWire as ClientMessage;

// --- server → client, from the SPEC (plus the fields tourcast adds) -------

export const serverExamples: ServerMessage[] = [
  // SPEC "Channels": a notification, on every connection of its user.
  {
    type: "notification",
    kind: "booking.confirmed",
    notificationId: "evt_91",
    bookingId: "booking_456",
    tourId: "tour_paris",
    tourName: "Paris City Tour",
    seats: 2,
    message: "Your booking is confirmed!",
    seq: 812,
    timestamp: "2026-11-23T10:30:00.000Z",
  },
  { type: "subscribed", channel: "stats" },
  {
    type: "connection",
    clientId: "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    message: "Connected to tourcast",
    protocol: "tourcast.v1",
    encoding: "json",
    epoch: "e1736330000",
    timestamp: "2025-01-08T10:30:00.000Z",
  },
  { type: "subscribed", tourId: "tour_paris", requestId: "sub-1" },
  { type: "subscribed", tourId: "tour_paris", recovered: true },
  { type: "unsubscribed", tourId: "tour_paris" },
  {
    type: "snapshot",
    tours: [
      { tourId: "tour_paris", tourName: "Paris City Tour", availableSeats: 20, maxGroupSize: 20, seq: 3, updatedAt: "2025-01-08T10:30:00.000Z" },
      { tourId: "tour_london", tourName: "London Eye Experience", availableSeats: 4, maxGroupSize: 15, seq: 17, updatedAt: "2025-01-08T10:31:00.000Z" },
      { tourId: "tour_rome", availableSeats: 18, seq: 0, updatedAt: "2025-01-08T10:32:00.000Z" },
    ],
    epoch: "e1736330000",
    timestamp: "2025-01-08T10:33:00.000Z",
  },
  { type: "snapshot", tours: [], epoch: "e1736330000", recovered: false, timestamp: "2025-01-08T10:33:00.000Z" },
  {
    type: "tour.availability.updated",
    data: { tourId: "tour_paris", tourName: "Paris City Tour", availableSeats: 8, maxGroupSize: 20 },
    seq: 42,
    timestamp: "2025-01-08T10:30:00.000Z",
  },
  {
    type: "tour.availability.low",
    data: { tourId: "tour_123", tourTitle: "Randonnée Montagne", availableSeats: 3, maxGroupSize: 15, threshold: 3 },
    seq: 7,
    timestamp: "2025-01-08T10:30:00.000Z",
  },
  { type: "pong", timestamp: "2025-01-08T10:30:00.000Z" },
  { type: "error", code: "invalid_message", message: "tourId is required and must not be empty", path: "/tourId", requestId: "sub-1" },
  { type: "error", code: "rate_limited", message: "slow down" },
  { type: "error", code: "unauthorized", message: "the token has expired", requestId: "rf-1" },
  { type: "refreshed", expiresAt: "2025-01-08T11:30:00.000Z", requestId: "rf-1" },
];

// --- narrowing on `type`, as a dashboard's reducer would ------------------

/** Dashboards colour a tour green above 10 seats, orange from 5 to 10, red below 5. */
export function colour(seats: number): "green" | "orange" | "red" {
  return seats > 10 ? "green" : seats >= 5 ? "orange" : "red";
}

export function apply(tours: Map<string, TourState>, msg: ServerMessage): string {
  switch (msg.type) {
    case "connection":
      return `connected as ${msg.clientId} (${msg.encoding}, epoch ${msg.epoch})`;
    case "subscribed":
      return `subscribed to ${msg.tourId}${msg.recovered === false ? ", snapshot follows" : ""}`;
    case "unsubscribed":
      return `unsubscribed from ${msg.tourId}`;
    case "snapshot":
      for (const tour of msg.tours) tours.set(tour.tourId, tour);
      return `${msg.tours.length} tours`;
    case "tour.availability.updated": {
      const known = tours.get(msg.data.tourId);
      // Drop an update whose seq is not newer than what we hold.
      if (known && msg.seq <= known.seq) return "stale";
      const name: string | undefined = msg.data.tourName;
      tours.set(msg.data.tourId, {
        tourId: msg.data.tourId,
        availableSeats: msg.data.availableSeats,
        seq: msg.seq,
        updatedAt: msg.timestamp,
        ...(name !== undefined ? { tourName: name } : {}),
      });
      return `${name ?? msg.data.tourId}: ${msg.data.availableSeats} seats (${colour(msg.data.availableSeats)})`;
    }
    case "tour.availability.low":
      return `${msg.data.availableSeats} seats left on ${msg.data.tourTitle} (threshold ${msg.data.threshold})`;
    case "pong":
      return `pong at ${msg.timestamp}`;
    case "refreshed":
      return `token valid until ${msg.expiresAt}`;
    case "notification": {
      const kind: NotificationKind = msg.kind;
      return kind === "booking.confirmed"
        ? `confirmed: ${msg.seats} seats on ${msg.tourName} (${msg.message})`
        : `cancelled: ${msg.bookingId}`;
    }
    case "stats":
      return `${msg.connectedClients} clients on ${msg.instances.length} instances, ${msg.eventsPerSecond} events/s`;
    case "error": {
      const code: ErrorCode = msg.code;
      return `${code} at ${msg.path ?? "(frame)"}: ${msg.message}`;
    }
    case "joined":
      return `in ${msg.room} with ${msg.memberCount} (${msg.members.map((m) => m.userId).join(", ")})`;
    case "left":
      return `left ${msg.room}`;
    case "room.message":
      return `${msg.room} #${msg.seq} ${msg.from.userId}: ${msg.text}`;
    case "presence":
      return `${msg.userId ?? "someone"} ${msg.action} ${msg.room} (${msg.memberCount})`;
    case "published":
      return `${msg.messageId} at ${msg.seq}`;
    case "viewers":
      return `${msg.count} viewing ${msg.tourId}`;
    default: {
      // Exhaustive: a new server message type breaks this line until handled.
      const unhandled: never = msg;
      return unhandled;
    }
  }
}

// --- wrong shapes must not compile -----------------------------------------

// @ts-expect-error a subscribe names a tour or a channel
export const noTourId: ClientMessage = { type: "subscribe" };
// SPEC "Rooms": a publish, as written.
export const chat: ClientMessage = { type: "publish", room: "support_42", text: "Bonjour !" };
// @ts-expect-error the sender is the server's to say: a publish has no `from`
export const forged: ClientMessage = { type: "publish", room: "support_42", text: "hi", from: { userId: "admin" } };
// @ts-expect-error a subscribe names a tour or a channel, not both
export const both: ClientMessage = { type: "subscribe", tourId: "tour_paris", channel: "stats" };
// @ts-expect-error "rooms" is not a channel (yet)
export const unknownChannel: ClientMessage = { type: "subscribe", channel: "rooms" };
// @ts-expect-error tourId is a string, not a number
export const numericTourId: ClientMessage = { type: "subscribe", tourId: 5 };
// @ts-expect-error "hello" is not a client message type
export const unknownType: ClientMessage = { type: "hello" };
// @ts-expect-error every message has a `type`
export const noType: ClientMessage = { tourId: "tour_paris" };
// @ts-expect-error unknown properties are refused, as by the schema
export const extraProperty: ClientMessage = { type: "ping", color: "blue" };
// @ts-expect-error since needs both epoch and seq
export const halfSince: ClientMessage = { type: "subscribe", tourId: "tour_paris", since: { epoch: "e1" } };
// @ts-expect-error seq is a number, not a string
export const stringSeq: ClientMessage = { type: "subscribe", tourId: "tour_paris", since: { epoch: "e1", seq: "41" } };
// @ts-expect-error optional means absent, never null
export const nullRequestId: ClientMessage = { type: "ping", requestId: null };
// @ts-expect-error refresh needs a token
export const refreshWithoutToken: ClientMessage = { type: "refresh" };
// @ts-expect-error the server never sends pong without a timestamp
export const pongWithoutTimestamp: ServerMessage = { type: "pong" };
// @ts-expect-error error codes are a closed set of snake_case strings
export const badCode: ServerMessage = { type: "error", code: "INVALID_MESSAGE", message: "x" };
// @ts-expect-error the old AVAILABILITY_UPDATE message is gone
export const oldUpdate: ServerMessage = { type: "AVAILABILITY_UPDATE", tourId: "tour_paris", availableSeats: 8, timestamp: "t" };
// @ts-expect-error updates carry a seq now
export const updateWithoutSeq: ServerMessage = { type: "tour.availability.updated", data: { tourId: "tour_paris", availableSeats: 8 }, timestamp: "t" };
// @ts-expect-error encoding is "json" or "proto"
export const badEncoding: ServerMessage = { type: "connection", clientId: "c", message: "m", protocol: "tourcast.v1", encoding: "xml", epoch: "e1", timestamp: "t" };

export function narrowingIsSound(msg: ServerMessage): number {
  if (msg.type === "pong") {
    // @ts-expect-error a pong has no data
    return msg.data.availableSeats;
  }
  return 0;
}
