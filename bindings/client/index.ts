// @tourcast/bindings: the generated protocol types and the typed client.
//
//   import { TourcastClient, type ServerMessage } from "@tourcast/bindings";
//
// Protobuf: `import { protoCodec } from "@tourcast/bindings/proto"`.
// React: `import { useTourAvailability } from "@tourcast/bindings/react"`.

export type * from "../index.js";
export {
  CLIENT_CLOSE,
  TourcastClient,
  type ChannelOptions,
  type ChannelSubscription,
  type NotificationOf,
  type StatsMessage,
  Room,
  type PublishResult,
  type RoomData,
  type RoomEvents,
  type RoomMessageOf,
  type RoomOptions,
  type RoomState,
  type RoomStatus,
  type ViewersMessage,
  TourcastError,
  TransportError,
  type ClientCounters,
  type ClientState,
  type ClientStats,
  type ConnectionStatus,
  type MessageOf,
  type ServerMessageType,
  type SubscribeOptions,
  type TourcastClientOptions,
  type TourcastErrorCode,
  type WebSocketFactory,
  type WebSocketLike,
} from "./client.js";
export {
  sseUrl,
  SSE_EVENT_TYPES,
  type EventSourceFactory,
  type EventSourceLike,
  type SseMessageEvent,
  type SseTargets,
  type Transport,
} from "./sse.js";
export { jsonCodec, asServerMessage, DecodeError, type Codec, type Frame } from "./codec.js";
export { TourStore, type LowAlert, type TourView } from "./store.js";
export {
  backoffDelay,
  resolveBackoff,
  MAX_RECONNECT_DELAY_MS,
  type BackoffOptions,
  type ResolvedBackoff,
} from "./backoff.js";

/** The URL of the gateway's WebSocket for a page it serves (`ws(s)://<host>/ws`). */
export function sameOriginUrl(path = "/ws", location: { protocol: string; host: string } = globalThis.location): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
