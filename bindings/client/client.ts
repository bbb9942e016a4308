// The tourcast WebSocket client: typed messages, acknowledged requests,
// an outbound queue while offline, automatic reconnect with recovery, stale
// update protection and dead-connection detection.

import type {
  ClientMessage,
  Encoding,
  ErrorCode,
  ServerMessage,
  StreamPosition,
} from "../index.js";
import { backoffDelay, resolveBackoff, type BackoffOptions, type ResolvedBackoff } from "./backoff.js";
import { jsonCodec, type Codec, type Frame } from "./codec.js";
import { TourStore, type LowAlert, type TourView } from "./store.js";

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
}

/** Counters, for tests and diagnostics. */
export interface ClientStats {
  /** Updates dropped because their `seq` was not newer than the state held. */
  staleDropped: number;
  /** Connections opened (the first one included). */
  connections: number;
  /** Connections declared dead by the keep-alive watchdog. */
  deadConnections: number;
  /** Frames that were not valid server messages. */
  decodeErrors: number;
}

export interface TourcastClientOptions {
  /** `ws://host:port/ws` (or `wss://`). */
  url: string;
  /** Wire encoding: `jsonCodec` (default) or `protoCodec` from `@tourcast/bindings/proto`. */
  codec?: Codec;
  /** The WebSocket class (default `globalThis.WebSocket`; pass `ws`'s in Node < 22). */
  WebSocket?: WebSocketFactory;
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
  /** Low-availability alerts kept in the state (default 20). */
  maxAlerts?: number;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

/** Why a request failed: the server's `error` code, or a client-side reason. */
export type TourcastErrorCode = ErrorCode | "timeout" | "closed" | "cancelled" | "queue_full" | "no_token";

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
  override readonly name = "TourcastError";
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
}

type Ack =
  | { readonly expect: "subscribed"; readonly resolve: (m: MessageOf<"subscribed">) => void }
  | { readonly expect: "unsubscribed"; readonly resolve: (m: MessageOf<"unsubscribed">) => void }
  | { readonly expect: "pong"; readonly resolve: (m: MessageOf<"pong">) => void }
  | { readonly expect: "refreshed"; readonly resolve: (m: MessageOf<"refreshed">) => void };

type Pending = Ack & {
  readonly requestId: string;
  /** The request; a subscribe's `since` is filled in when it is sent. */
  readonly message: ClientMessage;
  readonly sinceMode: "auto" | "none" | "given";
  readonly reject: (e: Error) => void;
  /** Issued by the client itself (a resubscribe after reconnect). */
  readonly internal: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Sent on the current connection (and so not waiting in the queue). */
  sent: boolean;
};

type AnyHandler = (message: ServerMessage) => void;

const isArrayBuffer = (v: unknown): v is ArrayBuffer =>
  v instanceof ArrayBuffer || Object.prototype.toString.call(v) === "[object ArrayBuffer]";

/**
 * A tourcast connection that keeps itself alive.
 *
 * ```ts
 * const client = new TourcastClient({ url: "ws://localhost:8080/ws" });
 * client.on("tour.availability.updated", (m) => console.log(m.data.availableSeats));
 * await client.subscribe("tour_paris");
 * client.close();
 * ```
 */
export class TourcastClient {
  readonly #url: string;
  readonly #codec: Codec;
  readonly #WebSocket: WebSocketFactory;
  readonly #requestTimeoutMs: number;
  readonly #keepAliveMs: number;
  readonly #connectTimeoutMs: number;
  readonly #token: TourcastClientOptions["token"];
  readonly #refreshMarginMs: number;
  readonly #autoRefresh: boolean;
  /** The token the current connection runs on. */
  #currentToken: string | undefined;
  readonly #backoff: ResolvedBackoff | false;
  readonly #maxQueued: number;
  readonly #maxAlerts: number;
  readonly #random: () => number;

  readonly #store = new TourStore();
  readonly #handlers = new Map<string, Set<AnyHandler>>();
  readonly #stateListeners = new Set<(state: ClientState) => void>();
  readonly #errorListeners = new Set<(error: Error) => void>();
  /** Requests not yet acknowledged, in the order they were made. */
  readonly #requests = new Map<string, Pending>();
  /** The tours the application wants (`"*"` for all), kept across reconnects. */
  readonly #subscriptions = new Set<string>();
  readonly #idPrefix = `c${Math.floor(Math.random() * 36 ** 4).toString(36)}-`;
  #nextId = 0;

  #ws: WebSocketLike | null = null;
  /** The codec outbound frames use on the current connection. */
  #wire: Codec;
  #status: ConnectionStatus = "idle";
  #clientId: string | undefined;
  #epoch: string | undefined;
  #alerts: readonly LowAlert[] = [];
  #attempt = 0;
  #nextRetryAt: number | undefined;
  #lastClose: { code: number; reason: string } | undefined;
  #lastReceived = 0;
  #state: ClientState;
  #stats: ClientStats = { staleDropped: 0, connections: 0, deadConnections: 0, decodeErrors: 0 };

  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #stableTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Incremented by every connection attempt, so a late token cannot open a stale one. */
  #generation = 0;

  constructor(options: TourcastClientOptions) {
    this.#url = options.url;
    this.#codec = options.codec ?? jsonCodec;
    this.#wire = this.#codec;
    const ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (ws === undefined) {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
    }
    this.#WebSocket = ws;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#keepAliveMs = Math.max(10, options.keepAliveIntervalMs ?? 30_000);
    this.#connectTimeoutMs = Math.max(1, options.connectTimeoutMs ?? 10_000);
    this.#token = options.token;
    this.#refreshMarginMs = Math.max(0, options.refreshMarginMs ?? 60_000);
    this.#autoRefresh = options.autoRefresh ?? true;
    this.#backoff = options.reconnect === false ? false : resolveBackoff(options.reconnect);
    this.#maxQueued = options.maxQueuedRequests ?? 1_000;
    this.#maxAlerts = options.maxAlerts ?? 20;
    this.#random = options.random ?? Math.random;
    this.#state = this.#buildState();
    if (options.autoConnect !== false) this.connect();
  }

  // --- public API ------------------------------------------------------

  /** The current state (a new object after every change). */
  get state(): ClientState {
    return this.#state;
  }

  /** Same as `state`; handy for `useSyncExternalStore`. */
  getState = (): ClientState => this.#state;

  /** Counters since the client was created. */
  get stats(): Readonly<ClientStats> {
    return { ...this.#stats };
  }

  /** The tours the client keeps subscribed across reconnects. */
  get subscriptions(): ReadonlySet<string> {
    return new Set(this.#subscriptions);
  }

  /** Opens the connection (only needed with `autoConnect: false`). */
  connect(): void {
    if (this.#status !== "idle") return;
    this.#open();
  }

  /**
   * Calls `handler` with every server message of `type`, narrowed to its
   * type; `"*"` receives every message. Stale updates are never delivered.
   * Returns a function that removes the handler.
   */
  on<T extends ServerMessageType>(type: T, handler: (message: MessageOf<T>) => void): () => void;
  on(type: "*", handler: (message: ServerMessage) => void): () => void;
  on(type: string, handler: (message: never) => void): () => void {
    let set = this.#handlers.get(type);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    // Stored under its own `type` and only ever called with messages of that
    // type (see #dispatch), which is what its signature promises.
    const stored = handler as AnyHandler;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }

  /** Calls `listener` with the new state after every change. Returns an unsubscribe function. */
  subscribeState = (listener: (state: ClientState) => void): (() => void) => {
    this.#stateListeners.add(listener);
    return () => {
      this.#stateListeners.delete(listener);
    };
  };

  /** Errors that belong to no request: undecodable frames, refused resubscribes, server errors. */
  onError(listener: (error: Error) => void): () => void {
    this.#errorListeners.add(listener);
    return () => {
      this.#errorListeners.delete(listener);
    };
  }

  /**
   * Subscribes to `tourId` (`"*"` for every tour) and keeps the subscription
   * across reconnects. Resolves with the server's `subscribed` (the snapshot
   * or the replayed events follow it and update `state`); rejects with a
   * {@link TourcastError} on the server's `error` or after the timeout. Made
   * while offline, the request waits in the queue.
   */
  subscribe(tourId: string, options: SubscribeOptions = {}): Promise<MessageOf<"subscribed">> {
    if (this.#status === "closed") return Promise.reject(closedError());
    this.#subscriptions.add(tourId);
    const given = options.since;
    const message: ClientMessage =
      given === undefined || given === null
        ? { type: "subscribe", tourId }
        : { type: "subscribe", tourId, since: given };
    const sinceMode = given === undefined ? "auto" : given === null ? "none" : "given";
    return new Promise((resolve, reject) => {
      this.#request({ expect: "subscribed", resolve }, message, reject, {
        sinceMode,
        timeoutMs: options.timeoutMs,
      });
    });
  }

  /**
   * Stops following `tourId`, forgets its state (unless `"*"` still covers
   * it) and cancels a subscribe to it still waiting in the queue. Resolves
   * with the server's `unsubscribed`.
   */
  unsubscribe(tourId: string, options: { timeoutMs?: number } = {}): Promise<MessageOf<"unsubscribed">> {
    if (this.#status === "closed") return Promise.reject(closedError());
    this.#subscriptions.delete(tourId);
    for (const pending of [...this.#requests.values()]) {
      const m = pending.message;
      if (!pending.sent && m.type === "subscribe" && m.tourId === tourId) {
        this.#settle(pending);
        pending.reject(new TourcastError("cancelled", `subscribe to ${tourId} cancelled by unsubscribe`));
      }
    }
    const forget = tourId === "*" ? [...this.#store.tours.keys()] : [tourId];
    if (!this.#subscriptions.has("*")) {
      if (this.#store.remove(forget.filter((id) => !this.#subscriptions.has(id)))) this.#emitState();
    }
    return new Promise((resolve, reject) => {
      this.#request({ expect: "unsubscribed", resolve }, { type: "unsubscribe", tourId }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
  }

  /** Round trip to the server; resolves with its `pong`. */
  ping(options: { timeoutMs?: number } = {}): Promise<MessageOf<"pong">> {
    if (this.#status === "closed") return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.#request({ expect: "pong", resolve }, { type: "ping" }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
  }

  /**
   * Hands the gateway a new access token for this connection (`refresh`);
   * without an argument, asks the `token` function for one. Resolves with the
   * server's `refreshed` (the new expiry). Later connections use the new token.
   */
  async refresh(token?: string, options: { timeoutMs?: number } = {}): Promise<MessageOf<"refreshed">> {
    if (this.#status === "closed") throw closedError();
    const fresh = token ?? (typeof this.#token === "function" ? await this.#token() : this.#token);
    if (fresh === undefined || fresh === "") throw new TourcastError("no_token", "no token to refresh with");
    const refreshed = await new Promise<MessageOf<"refreshed">>((resolve, reject) => {
      this.#request({ expect: "refreshed", resolve }, { type: "refresh", token: fresh }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
    this.#currentToken = fresh;
    this.#scheduleRefresh();
    return refreshed;
  }

  /**
   * Closes the connection for good: no reconnect, no timer left running,
   * pending requests rejected with code `closed`. A closed client stays closed.
   */
  close(): void {
    if (this.#status === "closed") return;
    this.#generation += 1;
    this.#clearTimers();
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
    for (const pending of [...this.#requests.values()]) {
      this.#settle(pending);
      pending.reject(closedError());
    }
    this.#nextRetryAt = undefined;
    this.#setStatus("closed");
  }

  // --- connection lifecycle ---------------------------------------------

  #open(): void {
    this.#retryTimer = undefined;
    this.#nextRetryAt = undefined;
    this.#setStatus(this.#stats.connections === 0 && this.#status !== "reconnecting" ? "connecting" : "reconnecting");
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
          this.#emitError(e instanceof Error ? e : new Error(String(e)));
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
    let ws: WebSocketLike;
    try {
      ws = new this.#WebSocket(url, [this.#codec.subprotocol]);
    } catch (e) {
      this.#emitError(e instanceof Error ? e : new Error(String(e)));
      this.#lost(1006, "could not open the WebSocket");
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
    this.#stats.connections += 1;
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
          this.#emitState();
        }
      }, backoff.stableAfterMs);
    }
    this.#pingTimer = setInterval(() => this.#sendNow({ type: "ping" }), this.#keepAliveMs);
    this.#armWatchdog();
    this.#scheduleRefresh();

    // Resubscribe what the application wants, resuming from what it holds,
    // unless a subscribe to the same tour is already waiting to be sent.
    const queued = new Set<string>();
    for (const pending of this.#requests.values()) {
      if (pending.message.type === "subscribe") queued.add(pending.message.tourId);
    }
    for (const tourId of this.#subscriptions) {
      if (queued.has(tourId)) continue;
      this.#request(
        {
          expect: "subscribed",
          resolve: () => undefined,
        },
        { type: "subscribe", tourId },
        (error) => {
          if (error instanceof TourcastError && error.code !== "timeout" && error.code !== "closed") {
            this.#emitError(error);
          }
        },
        { sinceMode: "auto", internal: true },
      );
    }
    this.#flush();
  }

  #lost(code: number, reason: string): void {
    this.#ws = null;
    this.#clearConnectionTimers();
    this.#lastClose = { code, reason };
    for (const pending of this.#requests.values()) pending.sent = false;
    if (this.#status === "closed") return;
    const backoff = this.#backoff;
    if (backoff === false) {
      this.close();
      return;
    }
    const delay = backoffDelay(this.#attempt, backoff, this.#random);
    this.#attempt += 1;
    this.#nextRetryAt = Date.now() + delay;
    this.#setStatus("reconnecting");
    this.#retryTimer = setTimeout(() => this.#open(), delay);
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
      this.#stats.deadConnections += 1;
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
      // A failed refresh is reported; the gateway then closes at expiry and the
      // reconnect asks the token function again.
      this.refresh().catch((e: unknown) => {
        if (!(e instanceof TourcastError && e.code === "closed")) {
          this.#emitError(e instanceof Error ? e : new Error(String(e)));
        }
      });
    }, delay);
  }

  #clearConnectionTimers(): void {
    clearTimeout(this.#stableTimer);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#watchdog);
    clearTimeout(this.#refreshTimer);
    this.#stableTimer = this.#pingTimer = this.#watchdog = this.#refreshTimer = undefined;
  }

  #clearTimers(): void {
    this.#clearConnectionTimers();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    for (const pending of this.#requests.values()) clearTimeout(pending.timer);
  }

  // --- requests -----------------------------------------------------------

  #request(
    ack: Ack,
    message: ClientMessage,
    reject: (e: Error) => void,
    options: { sinceMode: Pending["sinceMode"]; timeoutMs?: number | undefined; internal?: boolean },
  ): void {
    let waiting = 0;
    for (const p of this.#requests.values()) if (!p.sent) waiting += 1;
    if (this.#status !== "open" && waiting >= this.#maxQueued) {
      reject(new TourcastError("queue_full", `${waiting} requests already wait for a connection`));
      return;
    }
    const requestId = `${this.#idPrefix}${++this.#nextId}`;
    const pending: Pending = {
      ...ack,
      requestId,
      message: { ...message, requestId },
      sinceMode: options.sinceMode,
      reject,
      internal: options.internal ?? false,
      timer: undefined,
      sent: false,
    };
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    pending.timer = setTimeout(() => {
      this.#settle(pending);
      reject(new TourcastError("timeout", `${message.type} got no answer within ${timeoutMs} ms`, undefined, requestId));
    }, timeoutMs);
    this.#requests.set(requestId, pending);
    if (this.#status === "open") this.#transmit(pending);
  }

  /** Sends every queued request, in order. */
  #flush(): void {
    for (const pending of [...this.#requests.values()]) {
      if (this.#status !== "open") return;
      if (!pending.sent) this.#transmit(pending);
    }
  }

  #transmit(pending: Pending): void {
    let message = pending.message;
    if (message.type === "subscribe" && pending.sinceMode === "auto") {
      const since = this.#store.since(message.tourId);
      message = since === undefined ? message : { ...message, since };
    }
    if (this.#sendNow(message)) pending.sent = true;
  }

  /** Sends now if connected; returns whether it was handed to the socket. */
  #sendNow(message: ClientMessage): boolean {
    const ws = this.#ws;
    if (ws === null || this.#status !== "open") return false;
    try {
      ws.send(this.#wire.encode(message));
      return true;
    } catch (e) {
      this.#emitError(e instanceof Error ? e : new Error(String(e)));
      return false;
    }
  }

  /** Removes a request from the table and stops its timer. */
  #settle(pending: Pending): void {
    clearTimeout(pending.timer);
    this.#requests.delete(pending.requestId);
  }

  // --- inbound --------------------------------------------------------------

  #received(data: unknown): void {
    this.#lastReceived = Date.now();
    let frame: Frame;
    if (typeof data === "string" || isArrayBuffer(data)) frame = data;
    else if (ArrayBuffer.isView(data)) frame = data;
    else {
      this.#stats.decodeErrors += 1;
      this.#emitError(new TypeError("unexpected frame type (set binaryType to 'arraybuffer')"));
      return;
    }
    let message: ServerMessage;
    try {
      message = typeof frame === "string" ? jsonCodec.decode(frame) : this.#codec.decode(frame);
    } catch (e) {
      this.#stats.decodeErrors += 1;
      this.#emitError(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (this.#apply(message)) this.#dispatch(message);
  }

  /** Updates state and settles requests; returns false for a stale update. */
  #apply(message: ServerMessage): boolean {
    const epoch = this.#epoch ?? "";
    switch (message.type) {
      case "connection":
        this.#clientId = message.clientId;
        this.#epoch = message.epoch;
        this.#emitState();
        return true;
      case "snapshot":
        if (this.#store.applySnapshot(message)) this.#emitState();
        return true;
      case "tour.availability.updated":
        if (!this.#follows(message.data.tourId)) return false;
        if (!this.#store.applyUpdate(message, epoch)) {
          this.#stats.staleDropped += 1;
          return false;
        }
        this.#emitState();
        return true;
      case "tour.availability.low": {
        if (!this.#follows(message.data.tourId)) return false;
        if (!this.#store.applyLow(message, epoch)) {
          this.#stats.staleDropped += 1;
          return false;
        }
        const d = message.data;
        const alert: LowAlert = {
          key: `${epoch}:${message.seq}:${d.tourId}`,
          tourId: d.tourId,
          tourTitle: d.tourTitle,
          availableSeats: d.availableSeats,
          threshold: d.threshold,
          seq: message.seq,
          epoch,
          timestamp: message.timestamp,
          receivedAt: Date.now(),
          ...(d.maxGroupSize === undefined ? {} : { maxGroupSize: d.maxGroupSize }),
        };
        this.#alerts = [alert, ...this.#alerts].slice(0, this.#maxAlerts);
        this.#emitState();
        return true;
      }
      case "subscribed":
      case "unsubscribed":
      case "pong":
      case "refreshed":
        this.#settleAck(message.requestId, message);
        return true;
      case "error":
        if (!this.#settleAck(message.requestId, message)) {
          this.#emitError(new TourcastError(message.code, message.message, message.path, message.requestId));
        }
        return true;
    }
  }

  /**
   * Whether events of `tourId` are wanted: every tour until the first
   * subscribe (the gateway broadcasts to such connections), then only the
   * subscribed ones (events still in flight when a subscription changed are
   * ignored).
   */
  #follows(tourId: string): boolean {
    const subs = this.#subscriptions;
    return subs.size === 0 || subs.has("*") || subs.has(tourId);
  }

  /**
   * Settles the request `requestId` with its acknowledgement or error.
   * Returns whether a request was settled.
   */
  #settleAck(
    requestId: string | undefined,
    message: MessageOf<"subscribed" | "unsubscribed" | "pong" | "refreshed" | "error">,
  ): boolean {
    if (requestId === undefined) return false;
    const pending = this.#requests.get(requestId);
    if (pending === undefined) return false;
    this.#settle(pending);
    switch (message.type) {
      case "error":
        if (pending.message.type === "subscribe") this.#subscriptions.delete(pending.message.tourId);
        pending.reject(new TourcastError(message.code, message.message, message.path, requestId));
        return true;
      case "subscribed":
        if (pending.expect === "subscribed") pending.resolve(message);
        return true;
      case "unsubscribed":
        if (pending.expect === "unsubscribed") pending.resolve(message);
        return true;
      case "pong":
        if (pending.expect === "pong") pending.resolve(message);
        return true;
      case "refreshed":
        if (pending.expect === "refreshed") pending.resolve(message);
        return true;
    }
  }

  #dispatch(message: ServerMessage): void {
    for (const key of [message.type, "*"]) {
      const set = this.#handlers.get(key);
      if (set === undefined) continue;
      for (const handler of [...set]) {
        try {
          handler(message);
        } catch (e) {
          // A throwing handler must not break the client; report it like
          // an event listener's exception.
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
  }

  // --- state ------------------------------------------------------------------

  #setStatus(status: ConnectionStatus): void {
    if (this.#status === status && status !== "reconnecting") return;
    this.#status = status;
    this.#emitState();
  }

  #buildState(): ClientState {
    const state: {
      -readonly [K in keyof ClientState]: ClientState[K];
    } = {
      status: this.#status,
      tours: this.#store.tours,
      alerts: this.#alerts,
      encoding: this.#codec.encoding,
      attempt: this.#attempt,
    };
    if (this.#clientId !== undefined) state.clientId = this.#clientId;
    if (this.#epoch !== undefined) state.epoch = this.#epoch;
    if (this.#nextRetryAt !== undefined && this.#status === "reconnecting") state.nextRetryAt = this.#nextRetryAt;
    if (this.#lastClose !== undefined) state.lastClose = this.#lastClose;
    return state;
  }

  #emitState(): void {
    this.#state = this.#buildState();
    for (const listener of [...this.#stateListeners]) {
      try {
        listener(this.#state);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #emitError(error: Error): void {
    if (this.#errorListeners.size === 0) return;
    for (const listener of [...this.#errorListeners]) listener(error);
  }
}

/** Stops listening to a socket being abandoned (errors it may still report are swallowed). */
function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => undefined;
}

function closedError(): TourcastError {
  return new TourcastError("closed", "the client is closed");
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
