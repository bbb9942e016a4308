// The client's public vocabulary: options, state, errors and the WebSocket
// shape it needs. Shared by the modules behind TourcastClient (connection,
// requests, subscriptions) and re-exported by `@tourcast/bindings`.

import type { ErrorCode, ServerMessage, StreamPosition, Encoding } from "../index.js";
import type { BackoffOptions } from "./backoff.js";
import type { Codec } from "./codec.js";
import type { LowAlert, TourView } from "./store.js";
import type { EventSourceFactory, Transport } from "./sse.js";

/** Every server message `type`. */
export type ServerMessageType = ServerMessage["type"];
/** The server message whose `type` is `T`, e.g. `MessageOf<"snapshot">`. */
export type MessageOf<T extends ServerMessageType> = Extract<ServerMessage, { type: T }>;

// Method-style parameter checking, so that both the DOM `WebSocket` and the
// `ws` package's class satisfy WebSocketLike without adapters.
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/** The part of the WebSocket API the client uses (the DOM's, or `ws`'s in Node). */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers, `ws` in Node. */
export type WebSocketFactory = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * - `idle`: created with `autoConnect: false`, `connect()` not called yet;
 * - `connecting`: the first connection is being opened;
 * - `open`: connected;
 * - `reconnecting`: the connection was lost; waiting for or making the next attempt;
 * - `closed`: `close()` was called (or the connection was lost with `reconnect: false`).
 */
export type ConnectionStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Everything a UI needs, as one immutable value (replaced on every change). */
export interface ClientState {
  readonly status: ConnectionStatus;
  /** The tours held, by id. */
  readonly tours: ReadonlyMap<string, TourView>;
  /** Recent `tour.availability.low` alerts, newest first. */
  readonly alerts: readonly LowAlert[];
  /** The encoding the client asks for. */
  readonly encoding: Encoding;
  /** The server's id for the current connection. */
  readonly clientId?: string;
  /** The server history the current connection counts `seq` in. */
  readonly epoch?: string;
  /** Reconnect attempts since the last stable connection. */
  readonly attempt: number;
  /** While reconnecting: when the next attempt starts (`Date.now()` clock). */
  readonly nextRetryAt?: number;
  /** Close code and reason of the last connection that ended. */
  readonly lastClose?: { readonly code: number; readonly reason: string };
  /** The transport of the current connection (or of the next attempt): `websocket` or `sse`. */
  readonly transport?: "websocket" | "sse";
}

/**
 * The client's own counters, for tests and diagnostics (`client.counters`;
 * the gateway's figures are the `stats` channel, `client.stats(...)`).
 */
export interface ClientCounters {
  /** Updates (and notifications) dropped because their `seq` was not newer than what was held or delivered. */
  staleDropped: number;
  /** Connections opened (the first one included). */
  connections: number;
  /** Connections declared dead by the keep-alive watchdog. */
  deadConnections: number;
  /** Frames that were not valid server messages. */
  decodeErrors: number;
}

/** @deprecated Renamed {@link ClientCounters}: "stats" is the gateway's admin channel. */
export type ClientStats = ClientCounters;

export interface TourcastClientOptions {
  /** `ws://host:port/ws` (or `wss://`). */
  url: string;
  /** Wire encoding: `jsonCodec` (default) or `protoCodec` from `@tourcast/bindings/proto`. */
  codec?: Codec;
  /** The WebSocket class (default `globalThis.WebSocket`; pass `ws`'s in Node < 22). */
  WebSocket?: WebSocketFactory;
  /**
   * How to reach the gateway (default `"websocket"`):
   * - `"websocket"`: `url`, a WebSocket;
   * - `"sse"`: Server-Sent Events (`GET /sse` beside `url`: `ws:` becomes
   *   `http:`, `/ws` becomes `/sse`), for networks that refuse WebSocket
   *   upgrades and read-only pages. JSON only; subscriptions are the stream's
   *   query, so a change reopens the stream (debounced, resuming from the last
   *   event id); rooms, `ping`, `refresh` and `refreshStats` reject with a
   *   {@link TransportError};
   * - `"auto"`: WebSocket, falling back to SSE when handshakes keep failing
   *   (see `fallback`), and back to WebSocket later.
   */
  transport?: "websocket" | "sse" | "auto";
  /** The EventSource class for SSE (default `globalThis.EventSource`; in Node, the `eventsource` package's). */
  EventSource?: EventSourceFactory;
  /** Over SSE: how long subscription changes are gathered before the stream is reopened, in ms (default 50). */
  sseDebounceMs?: number;
  /**
   * With `transport: "auto"`: fall back to SSE after `afterFailures` WebSocket
   * handshakes in a row failed before any opened (default 2), and try
   * WebSocket again `retryWebSocketMs` after (default 300 000): a probe
   * handshake while the stream is open, which moves the connection back to
   * WebSocket when it succeeds.
   */
  fallback?: { afterFailures?: number; retryWebSocketMs?: number };
  /** Connect on construction (default true). */
  autoConnect?: boolean;
  /** How long `subscribe`/`unsubscribe`/`ping` wait for the server, in ms, from the call (default 10 000). */
  requestTimeoutMs?: number;
  /**
   * The keep-alive interval, in ms (default 30 000, the server's default). The
   * client pings at this interval and declares the connection dead when
   * nothing at all arrives for three intervals.
   */
  keepAliveIntervalMs?: number;
  /** Reconnect backoff, or `false` to never reconnect. */
  reconnect?: BackoffOptions | false;
  /**
   * Access token (JWT) for a gateway with authentication on, sent as `?token=`.
   * Pass a function to get a fresh one for every connection: the client then
   * also renews the token `refreshMarginMs` before it expires (a `refresh`
   * message), so the gateway does not close the connection (4001).
   */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** With a token function: renew this long before the token's `exp`, in ms (default 60 000). */
  refreshMarginMs?: number;
  /** With a token function: renew tokens before they expire (default true). */
  autoRefresh?: boolean;
  /** How long opening a connection may take before it is abandoned and retried, in ms (default 10 000). */
  connectTimeoutMs?: number;
  /** Requests that may wait for a connection (default 1 000); more are refused. */
  maxQueuedRequests?: number;
  /** Publishes per room that may wait to be sent (offline, or paced) (default 100); more are refused (`queue_full`). */
  maxQueuedPublishes?: number;
  /**
   * Paces room publishes to the gateway's publish bucket (per connection;
   * default `{ perSecond: 5, burst: 10 }`, the gateway's `PUBLISH_RATE` and
   * `PUBLISH_BURST` defaults): publishes beyond it wait in the room's queue,
   * in order, instead of being refused `rate_limited`, which matters most
   * when a queue filled offline is flushed. `false` sends at once.
   */
  publishRate?: { perSecond: number; burst: number } | false;
  /** Low-availability alerts kept in the state (default 20). */
  maxAlerts?: number;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

/** Why a request failed: the server's `error` code, or a client-side reason. */
export type TourcastErrorCode =
  | ErrorCode
  | "timeout"
  | "closed"
  | "cancelled"
  | "queue_full"
  | "no_token"
  /** `room.publish` on a room not joined (call `join()` first). */
  | "not_joined"
  /** A publish whose connection was lost before the server answered: it may or may not have been posted. */
  | "unconfirmed"
  /** Needs a WebSocket: the connection is an SSE stream (a {@link TransportError}). */
  | "transport_unsupported";

/** Close codes the client reports for connections it gave up on itself. */
export const CLIENT_CLOSE = {
  /** Nothing arrived for three keep-alive intervals. */
  keepAliveTimeout: 4900,
  /** The handshake did not complete within `connectTimeoutMs`. */
  connectTimeout: 4901,
  /** The token function failed. */
  tokenUnavailable: 4902,
} as const;

/** A request refused by the server or abandoned by the client. */
export class TourcastError extends Error {
  override readonly name: string = "TourcastError";
  constructor(
    readonly code: TourcastErrorCode,
    message: string,
    /** JSON pointer of the offending field, when the server named one. */
    readonly path?: string,
    readonly requestId?: string,
  ) {
    super(message);
  }
}

export interface SubscribeOptions {
  /**
   * Where to resume from. By default the client sends what it holds (so the
   * server replays what was missed); `null` asks for a fresh snapshot.
   */
  since?: StreamPosition | null;
  /** Overrides `requestTimeoutMs` for this request. */
  timeoutMs?: number;
  /**
   * With a tour id (not `"*"`): also deliver the tour's `viewers` count, at
   * once and whenever it changes; kept across reconnects. Most applications
   * use `client.viewers(tourId, handler)` instead.
   */
  viewers?: boolean;
}

/**
 * What cannot be done over the current transport: over SSE the client only
 * receives, so rooms (`join`, `publish`, `leave`), `ping`, `refresh` and
 * `refreshStats` need a WebSocket (`transport: "websocket"`, or `"auto"`
 * once it is back on WebSocket). Code `transport_unsupported`.
 */
export class TransportError extends TourcastError {
  override readonly name: string = "TransportError";
  constructor(
    /** What was refused, e.g. `"publish"`. */
    readonly operation: string,
    readonly transport: Transport | "sse" = "sse",
  ) {
    super("transport_unsupported", `${operation} needs a WebSocket: this connection uses Server-Sent Events, which only receive`);
  }
}

/** The error of every request made on (or pending in) a closed client. */
export function closedError(): TourcastError {
  return new TourcastError("closed", "the client is closed");
}

/** `e` as an Error (a thrown non-Error becomes its string). */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
