// The socket lifecycle behind TourcastClient: opening (with the token),
// the handshake timeout, keep-alive pings and the dead-connection watchdog,
// reconnecting with backoff, and the timer that renews the token before it
// expires. It knows nothing of requests or tours: it reports what happens
// through `ConnectionEvents` and sends what it is given.
//
// The transport (`options.transport`): a WebSocket, an SSE stream (an
// `SseSocket`, which looks like a WebSocket), or `auto`: WebSocket until
// `fallback.afterFailures` handshakes in a row fail before any opens, then
// SSE. WebSocket is tried again: by a probe handshake when the first stream
// opens (the failures may have been an outage) and every
// `fallback.retryWebSocketMs` while it stays open, and by one handshake
// before the next stream whenever a stream ends or fails.

import type { ClientMessage, ServerMessage } from "../index.js";
import {
  asError,
  CLIENT_CLOSE,
  type ClientCounters,
  type ConnectionStatus,
  type TourcastClientOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from "./api.js";
import { backoffDelay, resolveBackoff, type ResolvedBackoff } from "./backoff.js";
import { jsonCodec, type Codec, type Frame } from "./codec.js";
import { SseSocket, type EventSourceFactory, type SseResume, type SseTargets, type Transport } from "./sse.js";

/** The transport a connection runs on. */
export type ActiveTransport = "websocket" | "sse";

/** `auto`'s defaults: fall back after 2 refused handshakes, try WebSocket again after 5 minutes. */
export const FALLBACK_DEFAULTS = { afterFailures: 2, retryWebSocketMs: 300_000 } as const;

/** What the connection tells the client. */
export interface ConnectionEvents {
  /** Status, attempt, retry time or last close changed. */
  changed(): void;
  /** The connection is open (status `open`): renew subscriptions, send the queue. */
  opened(): void;
  /** The connection ended; nothing sent on it will be answered. */
  lost(): void;
  /** It ended and reconnecting is off: the client closes for good. */
  gaveUp(): void;
  /** A decoded server message. */
  message(message: ServerMessage): void;
  /** An error that belongs to no request. */
  error(error: Error): void;
  /** With a token function: the token expires soon, renew it (`refresh`). */
  refreshDue(): void;
  /** Over SSE: what the stream is to deliver (the subscriptions and channels wanted). */
  targets(): SseTargets;
}

const isArrayBuffer = (v: unknown): v is ArrayBuffer =>
  v instanceof ArrayBuffer || Object.prototype.toString.call(v) === "[object ArrayBuffer]";

export class Connection {
  readonly #url: string;
  readonly #codec: Codec;
  readonly #WebSocket: WebSocketFactory;
  readonly #keepAliveMs: number;
  readonly #connectTimeoutMs: number;
  readonly #token: TourcastClientOptions["token"];
  readonly #refreshMarginMs: number;
  readonly #autoRefresh: boolean;
  readonly #backoff: ResolvedBackoff | false;
  readonly #random: () => number;
  readonly #counters: ClientCounters;
  readonly #events: ConnectionEvents;
  readonly #mode: Transport;
  readonly #EventSource: EventSourceFactory | undefined;
  readonly #sseDebounceMs: number;
  readonly #fallbackAfter: number;
  readonly #retryWebSocketMs: number;
  /** Where the next SSE stream resumes from. */
  readonly #sseResume: SseResume = { lastEventId: undefined, covered: undefined };
  /** The transport of the current (or next) connection. */
  #transport: ActiveTransport;
  /** `auto`: WebSocket handshakes that failed in a row, none opening. */
  #wsFailures = 0;
  /** `auto` on SSE: time to try WebSocket again. */
  #retryWebSocketDue = false;
  #retryWebSocketTimer: ReturnType<typeof setTimeout> | undefined;
  /** `auto`: the first SSE stream after a fallback probes WebSocket at once (was it an outage, not a block?). */
  #probeOnOpen = false;
  #probe: WebSocketLike | null = null;
  /** The current connection ever opened. */
  #openedOnce = false;

  #ws: WebSocketLike | null = null;
  /** The codec outbound frames use on the current connection. */
  #wire: Codec;
  #status: ConnectionStatus = "idle";
  /** The token the current connection runs on. */
  #currentToken: string | undefined;
  #attempt = 0;
  #nextRetryAt: number | undefined;
  #lastClose: { code: number; reason: string } | undefined;
  #lastReceived = 0;
  /** Incremented by every connection attempt, so a late token cannot open a stale one. */
  #generation = 0;

  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: TourcastClientOptions, counters: ClientCounters, events: ConnectionEvents) {
    this.#url = options.url;
    this.#codec = options.codec ?? jsonCodec;
    this.#wire = this.#codec;
    this.#mode = options.transport ?? "websocket";
    if (this.#mode !== "websocket" && this.#mode !== "sse" && this.#mode !== "auto") {
      throw new TypeError(`unknown transport ${String(this.#mode)}: "websocket", "sse" or "auto"`);
    }
    const ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (ws === undefined && this.#mode !== "sse") {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
    }
    this.#WebSocket = ws ?? unavailableWebSocket;
    this.#EventSource = options.EventSource ?? (globalThis as { EventSource?: EventSourceFactory }).EventSource;
    if (this.#EventSource === undefined && this.#mode !== "websocket") {
      throw new TypeError("no EventSource implementation: pass options.EventSource (e.g. the `eventsource` package)");
    }
    this.#transport = this.#mode === "sse" ? "sse" : "websocket";
    this.#sseDebounceMs = Math.max(0, options.sseDebounceMs ?? 50);
    this.#fallbackAfter = Math.max(1, options.fallback?.afterFailures ?? FALLBACK_DEFAULTS.afterFailures);
    this.#retryWebSocketMs = Math.max(1, options.fallback?.retryWebSocketMs ?? FALLBACK_DEFAULTS.retryWebSocketMs);
    this.#keepAliveMs = Math.max(10, options.keepAliveIntervalMs ?? 30_000);
    this.#connectTimeoutMs = Math.max(1, options.connectTimeoutMs ?? 10_000);
    this.#token = options.token;
    this.#refreshMarginMs = Math.max(0, options.refreshMarginMs ?? 60_000);
    this.#autoRefresh = options.autoRefresh ?? true;
    this.#backoff = options.reconnect === false ? false : resolveBackoff(options.reconnect);
    this.#random = options.random ?? Math.random;
    this.#counters = counters;
    this.#events = events;
  }

  get status(): ConnectionStatus {
    return this.#status;
  }
  get isOpen(): boolean {
    return this.#status === "open";
  }
  get codec(): Codec {
    return this.#codec;
  }
  /** The transport of the current connection (or of the next attempt). */
  get transport(): ActiveTransport {
    return this.#transport;
  }
  /** Whether the current connection is an SSE stream (nothing but subscriptions can be sent). */
  get overSse(): boolean {
    return this.#transport === "sse";
  }
  get attempt(): number {
    return this.#attempt;
  }
  get nextRetryAt(): number | undefined {
    return this.#nextRetryAt;
  }
  get lastClose(): { readonly code: number; readonly reason: string } | undefined {
    return this.#lastClose;
  }

  /** A token for `refresh`: the one given, or a fresh one from the token function. */
  async token(): Promise<string | undefined> {
    return typeof this.#token === "function" ? await this.#token() : this.#token;
  }

  /** The connection now runs on `token` (after a `refresh`); renews it again before it expires. */
  renewed(token: string): void {
    this.#currentToken = token;
    this.#scheduleRefresh();
  }

  /** Opens the connection, from `idle` only. */
  connect(): void {
    if (this.#status !== "idle") return;
    this.#open();
  }

  /** Sends now if connected; returns whether it was handed to the socket. */
  send(message: ClientMessage): boolean {
    const ws = this.#ws;
    if (ws === null || this.#status !== "open") return false;
    try {
      ws.send(this.#wire.encode(message));
      return true;
    } catch (e) {
      this.#events.error(asError(e));
      return false;
    }
  }

  /** Closes the socket for good and stops every timer; `markClosed` then sets the status. */
  shutdown(): void {
    this.#generation += 1;
    this.#clearConnectionTimers();
    this.#stopRetryingWebSocket();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const ws = this.#ws;
    this.#ws = null;
    if (ws !== null) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
  }

  markClosed(): void {
    this.#nextRetryAt = undefined;
    this.#setStatus("closed");
  }

  // --- lifecycle -------------------------------------------------------------

  #open(): void {
    this.#retryTimer = undefined;
    this.#nextRetryAt = undefined;
    this.#setStatus(this.#counters.connections === 0 && this.#status !== "reconnecting" ? "connecting" : "reconnecting");
    const generation = ++this.#generation;
    const source = this.#token;
    if (typeof source !== "function") {
      this.#connect(source);
      return;
    }
    Promise.resolve()
      .then(source)
      .then(
        (token) => {
          if (generation === this.#generation && this.#status !== "closed") this.#connect(token);
        },
        (e: unknown) => {
          if (generation !== this.#generation || this.#status === "closed") return;
          this.#events.error(asError(e));
          this.#lost(CLIENT_CLOSE.tokenUnavailable, "token unavailable");
        },
      );
  }

  #connect(token: string | undefined): void {
    this.#currentToken = token;
    let url = this.#url;
    if (token !== undefined && token !== "") {
      const withToken = new URL(url);
      withToken.searchParams.set("token", token);
      url = withToken.toString();
    }
    this.#openedOnce = false;
    let ws: WebSocketLike;
    try {
      ws =
        this.#transport === "sse"
          ? new SseSocket(url, undefined, {
              EventSource: this.#EventSource as EventSourceFactory,
              targets: () => this.#events.targets(),
              resume: this.#sseResume,
              debounceMs: this.#sseDebounceMs,
            })
          : new this.#WebSocket(url, [this.#codec.subprotocol]);
    } catch (e) {
      this.#events.error(asError(e));
      this.#lost(1006, `could not open the ${this.#transport === "sse" ? "event stream" : "WebSocket"}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    // A handshake that never completes (a black-holed network) is abandoned.
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (this.#ws !== ws) return;
      detach(ws);
      try {
        ws.close(CLIENT_CLOSE.connectTimeout, "connect timeout");
      } catch {
        // not open yet: some implementations throw
      }
      this.#lost(CLIENT_CLOSE.connectTimeout, "connect timeout");
    }, this.#connectTimeoutMs);
    ws.onopen = () => {
      if (this.#ws === ws) this.#opened(ws);
    };
    ws.onmessage = (event) => {
      if (this.#ws === ws) this.#received(event.data);
    };
    ws.onclose = (event) => {
      if (this.#ws === ws) this.#lost(event.code, event.reason);
    };
    // An error is always followed by a close, which is where recovery starts.
    ws.onerror = () => undefined;
  }

  #opened(ws: WebSocketLike): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    this.#openedOnce = true;
    this.#counters.connections += 1;
    if (this.#transport === "websocket") {
      this.#wsFailures = 0;
      this.#stopRetryingWebSocket();
    } else if (this.#mode === "auto") {
      if (this.#probeOnOpen) {
        // The stream opens where WebSocket failed: refused upgrades, or the
        // server was down and is back. One handshake now tells which.
        this.#probeOnOpen = false;
        setTimeout(() => {
          if (this.#ws === ws && this.#status === "open" && this.#probe === null) this.#probeWebSocket();
        }, 0);
      } else {
        this.#scheduleWebSocketRetry();
      }
    }
    // Use the encoding the server picked, should it differ from the one asked for.
    this.#wire = ws.protocol === jsonCodec.subprotocol ? jsonCodec : this.#codec;
    this.#lastReceived = Date.now();
    this.#setStatus("open");
    const backoff = this.#backoff;
    if (backoff !== false) {
      this.#stableTimer = setTimeout(() => {
        this.#stableTimer = undefined;
        if (this.#attempt !== 0) {
          this.#attempt = 0;
          this.#events.changed();
        }
      }, backoff.stableAfterMs);
    }
    if (this.#transport === "websocket") {
      // Over SSE nothing can be sent, and the server's keep-alive comments are
      // not shown to the page: the stream's own end is the signal.
      this.#pingTimer = setInterval(() => this.send({ type: "ping" }), this.#keepAliveMs);
      this.#armWatchdog();
      this.#scheduleRefresh();
    }
    this.#events.opened();
  }

  #lost(code: number, reason: string): void {
    this.#ws = null;
    this.#clearConnectionTimers();
    this.#lastClose = { code, reason };
    this.#chooseNextTransport();
    this.#events.lost();
    if (this.#status === "closed") return;
    const backoff = this.#backoff;
    if (backoff === false) {
      this.#events.gaveUp();
      return;
    }
    const delay = backoffDelay(this.#attempt, backoff, this.#random);
    this.#attempt += 1;
    this.#nextRetryAt = Date.now() + delay;
    this.#setStatus("reconnecting");
    this.#retryTimer = setTimeout(() => this.#open(), delay);
  }

  #received(data: unknown): void {
    this.#lastReceived = Date.now();
    let frame: Frame;
    if (typeof data === "string" || isArrayBuffer(data)) frame = data;
    else if (ArrayBuffer.isView(data)) frame = data;
    else {
      this.#counters.decodeErrors += 1;
      this.#events.error(new TypeError("unexpected frame type (set binaryType to 'arraybuffer')"));
      return;
    }
    let message: ServerMessage;
    try {
      message = typeof frame === "string" ? jsonCodec.decode(frame) : this.#codec.decode(frame);
    } catch (e) {
      this.#counters.decodeErrors += 1;
      this.#events.error(asError(e));
      return;
    }
    this.#events.message(message);
  }

  /** Restarts the watchdog: the connection is dead after three silent keep-alive intervals. */
  #armWatchdog(): void {
    const deadline = this.#lastReceived + 3 * this.#keepAliveMs;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (Date.now() + 1 < this.#lastReceived + 3 * this.#keepAliveMs) {
        this.#armWatchdog();
        return;
      }
      const ws = this.#ws;
      if (ws === null) return;
      this.#counters.deadConnections += 1;
      // Do not wait for a closing handshake that will never come.
      detach(ws);
      try {
        ws.close(CLIENT_CLOSE.keepAliveTimeout, "keep-alive timeout");
      } catch {
        // already closing
      }
      this.#lost(CLIENT_CLOSE.keepAliveTimeout, "keep-alive timeout");
    }, Math.max(0, deadline - Date.now()));
  }

  /** With a token function: renew the token `refreshMarginMs` before it expires. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (!this.#autoRefresh || typeof this.#token !== "function" || this.#status !== "open") return;
    const expiresAt = tokenExpiry(this.#currentToken);
    if (expiresAt === undefined) return;
    const delay = Math.max(0, expiresAt - this.#refreshMarginMs - Date.now());
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      this.#events.refreshDue();
    }, delay);
  }

  // --- auto: fallback to SSE and back ---------------------------------------------

  /** After a connection ended: which transport the next attempt uses. */
  #chooseNextTransport(): void {
    if (this.#mode !== "auto") return;
    if (this.#transport === "websocket") {
      if (this.#openedOnce) {
        this.#wsFailures = 0;
        return;
      }
      this.#wsFailures += 1;
      if (this.#wsFailures >= this.#fallbackAfter) {
        this.#transport = "sse";
        this.#retryWebSocketDue = false;
        this.#probeOnOpen = true;
        this.#scheduleWebSocketRetry();
      }
    } else if (this.#retryWebSocketDue) {
      this.#useWebSocketAgain();
    } else {
      // A stream that ended (a restart, a cut) or failed too (nothing gets
      // through: the server is down?): the next attempt is one WebSocket
      // handshake, then SSE again if it fails.
      this.#useWebSocketAgain();
      this.#wsFailures = this.#fallbackAfter - 1;
    }
  }

  #useWebSocketAgain(): void {
    this.#stopRetryingWebSocket();
    this.#transport = "websocket";
    this.#wsFailures = 0;
  }

  #scheduleWebSocketRetry(): void {
    if (this.#retryWebSocketTimer !== undefined) return;
    this.#retryWebSocketTimer = setTimeout(() => {
      this.#retryWebSocketTimer = undefined;
      if (this.#transport !== "sse" || this.#status === "closed") return;
      if (this.#status !== "open") {
        // Not connected: the next attempt is a WebSocket.
        this.#retryWebSocketDue = true;
        return;
      }
      this.#probeWebSocket();
    }, this.#retryWebSocketMs);
  }

  /** While the stream is open: try a WebSocket handshake; if it opens, move the connection to WebSocket. */
  #probeWebSocket(): void {
    const generation = this.#generation;
    let url = this.#url;
    if (this.#currentToken !== undefined && this.#currentToken !== "") {
      const withToken = new URL(url);
      withToken.searchParams.set("token", this.#currentToken);
      url = withToken.toString();
    }
    let probe: WebSocketLike;
    try {
      probe = new this.#WebSocket(url, [this.#codec.subprotocol]);
    } catch {
      this.#scheduleWebSocketRetry();
      return;
    }
    this.#probe = probe;
    const done = (opened: boolean) => {
      if (this.#probe !== probe) return;
      this.#probe = null;
      clearTimeout(timer);
      detach(probe);
      try {
        probe.close(1000, "probe");
      } catch {
        // not open
      }
      if (generation !== this.#generation || this.#status === "closed" || this.#transport !== "sse") return;
      if (!opened) {
        this.#scheduleWebSocketRetry();
        return;
      }
      // WebSocket works again: end the stream and reconnect over WebSocket at once.
      this.#useWebSocketAgain();
      const sse = this.#ws;
      this.#ws = null;
      if (sse !== null) {
        detach(sse);
        sse.close(1000, "moving to WebSocket");
      }
      this.#clearConnectionTimers();
      this.#lastClose = { code: 1000, reason: "moving to WebSocket" };
      this.#events.lost();
      this.#open();
    };
    const timer = setTimeout(() => done(false), this.#connectTimeoutMs);
    probe.onopen = () => done(true);
    probe.onclose = () => done(false);
    probe.onerror = () => undefined;
  }

  #stopRetryingWebSocket(): void {
    clearTimeout(this.#retryWebSocketTimer);
    this.#retryWebSocketTimer = undefined;
    this.#retryWebSocketDue = false;
    const probe = this.#probe;
    this.#probe = null;
    if (probe !== null) {
      detach(probe);
      try {
        probe.close(1000, "probe");
      } catch {
        // not open
      }
    }
  }

  #clearConnectionTimers(): void {
    clearTimeout(this.#stableTimer);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#watchdog);
    clearTimeout(this.#refreshTimer);
    this.#stableTimer = this.#pingTimer = this.#watchdog = this.#refreshTimer = undefined;
  }

  #setStatus(status: ConnectionStatus): void {
    if (this.#status === status && status !== "reconnecting") return;
    this.#status = status;
    this.#events.changed();
  }
}

/** Stands in for a WebSocket class where there is none and only SSE is used. */
const unavailableWebSocket: WebSocketFactory = class {
  constructor() {
    throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
  }
} as unknown as WebSocketFactory;

/** Stops listening to a socket being abandoned (errors it may still report are swallowed). */
function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => undefined;
}

/** The `exp` of a JWT, in ms since the epoch (not verified: the gateway does that). */
function tokenExpiry(token: string | undefined): number | undefined {
  const payload = token?.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    if (typeof claims === "object" && claims !== null && "exp" in claims && typeof claims.exp === "number") {
      return claims.exp * 1000;
    }
  } catch {
    // not a JWT we can read: no automatic refresh
  }
  return undefined;
}
