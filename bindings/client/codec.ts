// Wire codecs: how typed messages become frames and frames become typed
// messages. The JSON codec lives here and is always available; the protobuf
// codec is a separate entry point (`@tourcast/bindings/proto`) so that
// JSON-only applications do not bundle the protobuf runtime.

import type { Channel, ClientMessage, Encoding, NotificationKind, PresenceAction, ServerMessage } from "../index.js";

/** A frame as received from a WebSocket (`binaryType = "arraybuffer"`). */
export type Frame = string | ArrayBuffer | ArrayBufferView;

/** Turns client messages into frames and frames into server messages. */
export interface Codec {
  /** The encoding this codec speaks. */
  readonly encoding: Encoding;
  /** The WebSocket subprotocol that asks the server for this encoding. */
  readonly subprotocol: string;
  /** Encodes a client message as a text (JSON) or binary (protobuf) frame. */
  encode(message: ClientMessage): string | Uint8Array;
  /** Decodes a frame; throws {@link DecodeError} when it is not a valid server message. */
  decode(frame: Frame): ServerMessage;
}

/** A frame that is not a valid server message. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

/** Every server message `type`, mapped to a check of the fields clients rely on. */
type Shapes = { [K in ServerMessage["type"]]: (m: Record<string, unknown>) => boolean };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string";
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);

const isTourState = (v: unknown): boolean =>
  isObject(v) &&
  isString(v.tourId) &&
  isCount(v.availableSeats) &&
  isCount(v.seq) &&
  optional(v.tourName, isString) &&
  optional(v.maxGroupSize, isCount);

const isTourAvailability = (v: unknown): boolean =>
  isObject(v) &&
  isString(v.tourId) &&
  isCount(v.availableSeats) &&
  optional(v.tourName, isString) &&
  optional(v.maxGroupSize, isCount);

const isLowAvailability = (v: unknown): boolean =>
  isObject(v) &&
  isString(v.tourId) &&
  isString(v.tourTitle) &&
  isCount(v.availableSeats) &&
  isCount(v.threshold) &&
  optional(v.maxGroupSize, isCount);

const CHANNELS: ReadonlySet<unknown> = new Set<Channel>(["notifications", "stats"]);
const NOTIFICATION_KINDS: ReadonlySet<unknown> = new Set<NotificationKind>(["booking.confirmed", "booking.cancelled"]);
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** A `subscribed` / `unsubscribed` names a tour or a channel. */
const namesTarget = (m: Record<string, unknown>): boolean =>
  optional(m.tourId, isString) &&
  optional(m.channel, (c) => CHANNELS.has(c)) &&
  (m.tourId !== undefined || m.channel !== undefined);

const isMember = (v: unknown): boolean => isObject(v) && isString(v.userId);
const PRESENCE_ACTIONS: ReadonlySet<unknown> = new Set<PresenceAction>(["joined", "left", "count"]);

const isByEncoding = (v: unknown): boolean => isObject(v) && isCount(v.json) && isCount(v.proto);
const isTourSubscribers = (v: unknown): boolean => isObject(v) && isString(v.tourId) && isCount(v.subscribers);
const isInstanceStats = (v: unknown): boolean =>
  isObject(v) &&
  isString(v.instanceId) &&
  isCount(v.connectedClients) &&
  isNumber(v.eventsPerSecond) &&
  isNumber(v.deliveriesPerSecond) &&
  Array.isArray(v.topTours) &&
  v.topTours.every(isTourSubscribers);

// The generated JSON Schemas are the full contract (the server validates what
// it receives against them); a client only needs to trust the fields its
// state depends on, without shipping a schema validator to every browser.
const SHAPES: Shapes = {
  connection: (m) => isString(m.clientId) && isString(m.epoch),
  subscribed: namesTarget,
  unsubscribed: namesTarget,
  snapshot: (m) => isString(m.epoch) && Array.isArray(m.tours) && m.tours.every(isTourState),
  "tour.availability.updated": (m) => isCount(m.seq) && isTourAvailability(m.data),
  "tour.availability.low": (m) => isCount(m.seq) && isLowAvailability(m.data),
  pong: () => true,
  error: (m) => isString(m.code) && isString(m.message),
  refreshed: (m) => isString(m.expiresAt),
  notification: (m) =>
    NOTIFICATION_KINDS.has(m.kind) &&
    isString(m.notificationId) &&
    isString(m.bookingId) &&
    isString(m.tourId) &&
    isString(m.message) &&
    isCount(m.seq),
  stats: (m) =>
    isCount(m.connectedClients) &&
    isByEncoding(m.clientsByEncoding) &&
    isNumber(m.eventsPerSecond) &&
    isNumber(m.deliveriesPerSecond) &&
    Array.isArray(m.instances) &&
    m.instances.every(isInstanceStats) &&
    Array.isArray(m.topTours) &&
    m.topTours.every(isTourSubscribers),
  joined: (m) =>
    isString(m.room) && Array.isArray(m.members) && m.members.every(isMember) && isCount(m.memberCount) && isCount(m.seq),
  left: (m) => isString(m.room),
  "room.message": (m) =>
    isString(m.room) &&
    isMember(m.from) &&
    isString(m.text) &&
    isString(m.messageId) &&
    isCount(m.seq) &&
    optional(m.data, isObject),
  presence: (m) =>
    isString(m.room) && PRESENCE_ACTIONS.has(m.action) && isCount(m.memberCount) && optional(m.userId, isString),
  published: (m) => isString(m.room) && isCount(m.seq) && isString(m.messageId),
  viewers: (m) => isString(m.tourId) && isCount(m.count),
};

const isKnownType = (t: string): t is ServerMessage["type"] => Object.hasOwn(SHAPES, t);

/**
 * Checks that a parsed JSON value is a server message the client understands.
 * Unknown `type`s are rejected too: a newer server may add messages, which an
 * older client ignores (the client reports them through `onError`).
 */
export function asServerMessage(value: unknown): ServerMessage {
  if (!isObject(value)) throw new DecodeError("a server message must be a JSON object");
  const type = value.type;
  if (!isString(type)) throw new DecodeError("a server message needs a string `type`");
  if (!isKnownType(type)) throw new DecodeError(`unknown server message type ${JSON.stringify(type)}`);
  if (!SHAPES[type](value)) throw new DecodeError(`malformed ${type} message`);
  // The shape check above vouches for the fields the client reads.
  return value as ServerMessage;
}

const utf8 = new TextDecoder();

/** Text of a frame (a JSON frame may arrive as bytes through some proxies). */
export function frameText(frame: Frame): string {
  if (typeof frame === "string") return frame;
  if (frame instanceof ArrayBuffer) return utf8.decode(frame);
  return utf8.decode(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength));
}

/** JSON in text frames: the default encoding. */
export const jsonCodec: Codec = {
  encoding: "json",
  subprotocol: "tourcast.v1.json",
  encode: (message) => JSON.stringify(message),
  decode(frame) {
    let value: unknown;
    try {
      value = JSON.parse(frameText(frame));
    } catch (e) {
      throw new DecodeError(`malformed JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    return asServerMessage(value);
  },
};
