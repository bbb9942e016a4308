// The tourcast WebSocket client: typed messages, acknowledged requests,
// an outbound queue while offline, automatic reconnect with recovery, stale
// update protection and dead-connection detection.
//
// TourcastClient is the public face; the work is done by the modules it
// wires together:
// - connection.ts: the socket lifecycle (token, handshake timeout, keep-alive,
//   dead-connection watchdog, reconnect with backoff, token renewal timer);
// - requests.ts: request correlation (`requestId`s, the offline queue, timeouts);
// - subscriptions.ts: the tours wanted, the state held for them, recovery;
// - channels.ts: the channels wanted (`notifications`, `stats`), the newest
//   notification position (recovery, duplicate dropping), the latest stats;
// - rooms.ts: the rooms joined (`client.room(name)`): membership kept across
//   reconnects, members, deduplicated messages, the publish queue;
// - snapshots.ts: the parts of a large snapshot, put back together.
// This file routes server messages between them, emits the state and calls
// the application's handlers.
//
// Words: "stats" is the gateway's admin channel (`client.stats(handler)`);
// the client's own figures are its `counters`.

import { SnapshotParts } from "./snapshots.js";
import type { Channel, ClientMessage, NotificationKind, ServerMessage } from "../index.js";
import {
  asError,
  closedError,
  TourcastError,
  TransportError,
  type ClientCounters,
  type ClientState,
  type MessageOf,
  type ServerMessageType,
  type SubscribeOptions,
  type TourcastClientOptions,
} from "./api.js";
import { Channels, type NotificationOf, type StatsMessage } from "./channels.js";
import { Connection } from "./connection.js";
import { channelKey, Requests, type TargetKey } from "./requests.js";
import { PublishPacer, Room, Rooms, type RoomOptions } from "./rooms.js";
import { Subscriptions } from "./subscriptions.js";

export {
  CLIENT_CLOSE,
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
} from "./api.js";

export type { NotificationOf, StatsMessage } from "./channels.js";
export {
  Room,
  type PublishResult,
  type RoomData,
  type RoomEvents,
  type RoomMessageOf,
  type RoomOptions,
  type RoomState,
  type RoomStatus,
} from "./rooms.js";

/** A tour's `viewers` message: how many connections look at it, on every instance. */
export type ViewersMessage = MessageOf<"viewers">;

type AnyHandler = (message: ServerMessage) => void;

/** Options of {@link TourcastClient.notifications} and {@link TourcastClient.stats}. */
export interface ChannelOptions {
  /**
   * The server refused the subscription (a {@link TourcastError}, code
   * `forbidden` without a token or without the admin claim), on the first
   * subscribe or on a resubscribe after a reconnect, or it timed out. Without
   * it, such errors go to `onError` listeners of the client.
   */
  onError?: (error: TourcastError) => void;
  /**
   * After a reconnect, the server could not replay what was missed
   * (`recovered: false`): notifications sent meanwhile are lost to this
   * client (fetch them from the application's API if they matter).
   */
  onGap?: () => void;
}

/**
 * What {@link TourcastClient.notifications} and {@link TourcastClient.stats}
 * return: call it to stop listening (the channel is unsubscribed when its
 * last listener goes). `ready` settles with the server's answer to the
 * subscribe: `subscribed`, or a {@link TourcastError} (e.g. `forbidden`).
 */
export type ChannelSubscription = (() => void) & { readonly ready: Promise<MessageOf<"subscribed">> };

interface ChannelListener {
  readonly deliver: (message: ServerMessage) => void;
  readonly options: ChannelOptions;
}

const isChannelKey = (key: TargetKey): boolean => key.startsWith("#");
const channelOf = (key: TargetKey): Channel => key.slice(1) as Channel;

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
  readonly #handlers = new Map<string, Set<AnyHandler>>();
  readonly #stateListeners = new Set<(state: ClientState) => void>();
  readonly #errorListeners = new Set<(error: Error) => void>();
  readonly #counters: ClientCounters = { staleDropped: 0, connections: 0, deadConnections: 0, decodeErrors: 0 };
  readonly #connection: Connection;
  readonly #requests: Requests;
  readonly #subscriptions: Subscriptions;
  readonly #channels = new Channels();
  readonly #channelListeners = new Map<Channel, Set<ChannelListener>>();
  /** The subscribe of each channel wanted: what `ready` returns to later listeners. */
  readonly #channelReady = new Map<Channel, Promise<MessageOf<"subscribed">>>();
  readonly #snapshotParts = new SnapshotParts();
  readonly #rooms: Rooms;
  /** `client.viewers` listeners, by tour. */
  readonly #viewerListeners = new Map<string, Set<(message: ViewersMessage) => void>>();
  /** The newest `viewers` count of each tour whose count is wanted. */
  readonly #viewerCounts = new Map<string, ViewersMessage>();
  /** The `viewers()` subscribe of each tour: what `ready` returns to later listeners. */
  readonly #viewerReady = new Map<string, { ready: Promise<MessageOf<"subscribed">>; owned: boolean }>();
  #roomRequests = 0;
  #clientId: string | undefined;
  #state: ClientState;

  constructor(options: TourcastClientOptions) {
    this.#subscriptions = new Subscriptions(options);
    this.#connection = new Connection(options, this.#counters, {
      changed: () => this.#emitState(),
      opened: () => this.#renew(),
      lost: () => {
        this.#requests.unsent();
        this.#rooms.lost();
      },
      gaveUp: () => this.close(),
      message: (message) => {
        // The parts of a large snapshot become one message.
        const whole = message.type === "snapshot" ? this.#snapshotParts.add(message) : message;
        if (whole !== undefined && this.#apply(whole)) this.#dispatch(whole);
      },
      error: (error) => this.#emitError(error),
      targets: () => ({
        tours: this.#subscriptions.wanted,
        channels: this.#channels.wanted,
        viewers: new Set([...this.#subscriptions.wanted].filter((t) => this.#subscriptions.wantsViewers(t))),
      }),
      refreshDue: () => {
        // A failed refresh is reported; the gateway then closes at expiry and
        // the reconnect asks the token function again.
        this.refresh().catch((e: unknown) => {
          if (!(e instanceof TourcastError && e.code === "closed")) this.#emitError(asError(e));
        });
      },
    });
    this.#requests = new Requests(
      {
        isOpen: () => this.#connection.isOpen,
        send: (message) => this.#connection.send(message),
        since: (target) =>
          isChannelKey(target) ? this.#channels.since(channelOf(target)) : this.#subscriptions.since(target),
        subscribeRefused: (target) => {
          if (isChannelKey(target)) this.#channels.unwant(channelOf(target));
          else this.#subscriptions.drop(target);
        },
      },
      options,
    );
    const roomIdPrefix = `r${Math.floor(Math.random() * 36 ** 4).toString(36)}-`;
    const pacer = options.publishRate === false ? undefined : new PublishPacer(options.publishRate ?? { perSecond: 5, burst: 10 });
    this.#rooms = new Rooms({
      isOpen: () => this.#connection.isOpen,
      send: (message) => this.#connection.send(message),
      epoch: () => this.#subscriptions.epoch,
      isClosed: () => this.#connection.status === "closed",
      unsupported: (operation) => (this.#connection.overSse ? new TransportError(operation) : undefined),
      requestId: () => `${roomIdPrefix}${++this.#roomRequests}`,
      pace: () => pacer?.take() ?? 0,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      maxQueuedPublishes: options.maxQueuedPublishes ?? 100,
    });
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

  /** The client's own counters since it was created (a copy). */
  get counters(): Readonly<ClientCounters> {
    return { ...this.#counters };
  }

  /** The tours the client keeps subscribed across reconnects. */
  get subscriptions(): ReadonlySet<string> {
    return this.#subscriptions.wanted;
  }

  /** The channels the client keeps subscribed across reconnects. */
  get channels(): ReadonlySet<Channel> {
    return this.#channels.wanted;
  }

  /** Opens the connection (only needed with `autoConnect: false`). */
  connect(): void {
    this.#connection.connect();
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
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    this.#subscriptions.want(tourId);
    if (options.viewers === true) this.#subscriptions.wantViewers(tourId);
    const given = options.since;
    const viewers = this.#subscriptions.wantsViewers(tourId) ? { viewers: true } : {};
    const message: ClientMessage =
      given === undefined || given === null
        ? { type: "subscribe", tourId, ...viewers }
        : { type: "subscribe", tourId, since: given, ...viewers };
    const sinceMode = given === undefined ? "auto" : given === null ? "none" : "given";
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "subscribed", resolve }, message, reject, { sinceMode, timeoutMs: options.timeoutMs });
    });
  }

  /**
   * Stops following `tourId`, forgets its state (unless `"*"` still covers
   * it) and cancels a subscribe to it still waiting in the queue. Resolves
   * with the server's `unsubscribed`.
   */
  unsubscribe(tourId: string, options: { timeoutMs?: number } = {}): Promise<MessageOf<"unsubscribed">> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    this.#requests.cancelSubscribe(tourId);
    if (this.#subscriptions.unwant(tourId)) this.#emitState();
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "unsubscribed", resolve }, { type: "unsubscribe", tourId }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
  }

  /**
   * Subscribes to a channel (`"notifications"`: the token's user's own;
   * `"stats"`: admins only) and keeps it across reconnects, resuming
   * notifications from the newest one delivered. Resolves with the server's
   * `subscribed`; rejects with a {@link TourcastError} (`forbidden` when the
   * connection may not) or after the timeout. Most applications use
   * {@link notifications} or {@link stats} instead, which count their
   * listeners.
   */
  subscribeChannel(channel: Channel, options: SubscribeOptions = {}): Promise<MessageOf<"subscribed">> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    this.#channels.want(channel);
    const given = options.since;
    const message: ClientMessage =
      given === undefined || given === null
        ? { type: "subscribe", channel }
        : { type: "subscribe", channel, since: given };
    const sinceMode = given === undefined ? "auto" : given === null ? "none" : "given";
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "subscribed", resolve }, message, reject, { sinceMode, timeoutMs: options.timeoutMs });
    });
  }

  /** Stops following a channel (and cancels a subscribe to it still queued). Resolves with `unsubscribed`. */
  unsubscribeChannel(channel: Channel, options: { timeoutMs?: number } = {}): Promise<MessageOf<"unsubscribed">> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    this.#requests.cancelSubscribe(channelKey(channel));
    this.#channels.unwant(channel);
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "unsubscribed", resolve }, { type: "unsubscribe", channel }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
  }

  /**
   * Calls `handler` with every personal notification of the token's user
   * (`booking.confirmed`, `booking.cancelled`), or only those of `kind`, with
   * the argument narrowed to it. Subscribes the `notifications` channel for
   * the first listener and unsubscribes it when the last one goes. After a
   * reconnect it resubscribes with `since` (the newest notification
   * delivered), so the server replays the ones missed; a notification not
   * newer than one delivered (same epoch) is dropped. A refusal (`forbidden`:
   * no token, or a gateway with JWT off) rejects `ready` and goes to
   * `options.onError`.
   *
   * ```ts
   * const stop = client.notifications("booking.confirmed", (n) => toast(n.message));
   * ```
   */
  notifications(handler: (notification: NotificationOf) => void, options?: ChannelOptions): ChannelSubscription;
  notifications<K extends NotificationKind>(
    kind: K,
    handler: (notification: NotificationOf<K>) => void,
    options?: ChannelOptions,
  ): ChannelSubscription;
  notifications(
    a: NotificationKind | ((notification: NotificationOf) => void),
    b?: ((notification: never) => void) | ChannelOptions,
    c?: ChannelOptions,
  ): ChannelSubscription {
    const kind = typeof a === "string" ? a : undefined;
    // Only ever called with notifications of `kind` (see `deliver`), which is
    // what the overload's signature promises.
    const handler = (typeof a === "string" ? b : a) as (notification: NotificationOf) => void;
    const options = (typeof a === "string" ? c : (b as ChannelOptions | undefined)) ?? {};
    return this.#listen("notifications", options, (message) => {
      if (message.type === "notification" && (kind === undefined || message.kind === kind)) handler(message);
    });
  }

  /**
   * Calls `handler` with every `stats` message: one at once, then one every
   * `STATS_INTERVAL` (and the answers to {@link refreshStats}). Needs a token
   * with the admin claim (or a gateway with JWT off and `--admin-open`);
   * otherwise `ready` rejects with `forbidden` and `options.onError` is called.
   * Resubscribes after a reconnect.
   *
   * ```ts
   * const stop = client.stats((s) => plot(s.connectedClients, s.instances));
   * ```
   */
  stats(handler: (stats: StatsMessage) => void, options: ChannelOptions = {}): ChannelSubscription {
    return this.#listen("stats", options, (message) => {
      if (message.type === "stats") handler(message);
    });
  }

  /** @deprecated Renamed {@link stats}; the client's own counters are {@link counters}. */
  adminStats(handler: (stats: StatsMessage) => void, options: ChannelOptions = {}): ChannelSubscription {
    return this.stats(handler, options);
  }

  /** The newest `stats` received, if any. */
  get latestStats(): StatsMessage | undefined {
    return this.#channels.latestStats;
  }

  /**
   * Asks for a `stats` message at once (`refreshStats`); resolves with the
   * reply that echoes this request's `requestId`. The connection must be
   * subscribed to `stats` (see {@link stats}): otherwise the server
   * answers `forbidden` and the promise rejects with that {@link TourcastError}.
   */
  refreshStats(options: { timeoutMs?: number } = {}): Promise<StatsMessage> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    if (this.#connection.overSse) return Promise.reject(new TransportError("refreshStats"));
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "stats", resolve }, { type: "refreshStats" }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
  }

  // --- rooms and viewers -------------------------------------------------------

  /**
   * The room `name` (the same object on every call): `join()`, `leave()`,
   * `publish(text, data?)`, typed `message` and `presence` events, and a live
   * member list. See {@link Room}.
   *
   * ```ts
   * const room = client.room("support_42");
   * room.on("message", (m) => show(m.from.userId, m.text));
   * await room.join();
   * await room.publish("Bonjour !");
   * ```
   */
  room(name: string, options?: RoomOptions): Room {
    return this.#rooms.get(name, options);
  }

  /** The rooms the client is a member of, or joining (kept across reconnects). */
  get rooms(): ReadonlySet<string> {
    return this.#rooms.wanted;
  }

  /**
   * Calls `handler` with the number of connections looking at `tourId` (on
   * every instance): at once, then whenever it changes (at most once per
   * `STATS_INTERVAL`). Subscribes the tour by name with `viewers: true` for
   * the first listener (the state then holds the tour too) and, when that
   * subscribe was made for it, unsubscribes it after the last one goes.
   * Kept across reconnects.
   */
  viewers(tourId: string, handler: (message: ViewersMessage) => void, options: ChannelOptions = {}): ChannelSubscription {
    let listeners = this.#viewerListeners.get(tourId);
    if (listeners === undefined) {
      listeners = new Set();
      this.#viewerListeners.set(tourId, listeners);
    }
    listeners.add(handler);
    let entry = this.#viewerReady.get(tourId);
    if (entry === undefined || !this.#subscriptions.wantsViewers(tourId)) {
      const owned = entry?.owned ?? !this.#subscriptions.wanted.has(tourId);
      const ready = this.subscribe(tourId, { viewers: true });
      entry = { ready, owned };
      this.#viewerReady.set(tourId, entry);
      const current = entry;
      ready.catch((e: unknown) => {
        if (this.#viewerReady.get(tourId) === current) this.#viewerReady.delete(tourId);
        const error = asError(e);
        if (error instanceof TourcastError && (error.code === "closed" || error.code === "cancelled")) return;
        if (options.onError !== undefined) safely(() => options.onError?.(error instanceof TourcastError ? error : new TourcastError("internal", error.message)));
        else this.#emitError(error);
      });
    }
    const latest = this.#viewerCounts.get(tourId);
    if (latest !== undefined) queueMicrotask(() => listeners.has(handler) && safely(() => handler(latest)));
    const set = listeners;
    let active = true;
    const stop = () => {
      if (!active) return;
      active = false;
      set.delete(handler);
      // A tick later, when no listener came back meanwhile (StrictMode).
      setTimeout(() => {
        if (set.size > 0 || this.#connection.status === "closed") return;
        const held = this.#viewerReady.get(tourId);
        this.#viewerReady.delete(tourId);
        this.#viewerListeners.delete(tourId);
        this.#viewerCounts.delete(tourId);
        this.#subscriptions.unwantViewers(tourId);
        if (held?.owned === true && this.#subscriptions.wanted.has(tourId)) this.unsubscribe(tourId).catch(() => undefined);
      }, 0);
    };
    return Object.assign(stop, { ready: entry.ready });
  }

  /** The newest viewer count of `tourId`, when {@link viewers} listens to it and one arrived. */
  viewerCount(tourId: string): number | undefined {
    return this.#viewerCounts.get(tourId)?.count;
  }

  /** Round trip to the server; resolves with its `pong`. */
  ping(options: { timeoutMs?: number } = {}): Promise<MessageOf<"pong">> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
    if (this.#connection.overSse) return Promise.reject(new TransportError("ping"));
    return new Promise((resolve, reject) => {
      this.#requests.request({ expect: "pong", resolve }, { type: "ping" }, reject, {
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
    if (this.#connection.status === "closed") throw closedError();
    // Over SSE the stream ends when its token expires and the reconnect asks the token function again.
    if (this.#connection.overSse) throw new TransportError("refresh");
    const fresh = token ?? (await this.#connection.token());
    if (fresh === undefined || fresh === "") throw new TourcastError("no_token", "no token to refresh with");
    const refreshed = await new Promise<MessageOf<"refreshed">>((resolve, reject) => {
      this.#requests.request({ expect: "refreshed", resolve }, { type: "refresh", token: fresh }, reject, {
        sinceMode: "none",
        timeoutMs: options.timeoutMs,
      });
    });
    this.#connection.renewed(fresh);
    return refreshed;
  }

  /**
   * Closes the connection for good: no reconnect, no timer left running,
   * pending requests rejected with code `closed`. A closed client stays closed.
   */
  close(): void {
    if (this.#connection.status === "closed") return;
    this.#connection.shutdown();
    this.#requests.rejectAll(closedError);
    this.#connection.markClosed();
    this.#rooms.closed();
  }

  // --- channels ---------------------------------------------------------------

  #listen(channel: Channel, options: ChannelOptions, deliver: (message: ServerMessage) => void): ChannelSubscription {
    let listeners = this.#channelListeners.get(channel);
    if (listeners === undefined) {
      listeners = new Set();
      this.#channelListeners.set(channel, listeners);
    }
    const listener: ChannelListener = { deliver, options };
    listeners.add(listener);
    let ready = this.#channelReady.get(channel);
    if (ready === undefined || !this.#channels.has(channel)) {
      ready = this.subscribeChannel(channel);
      this.#channelReady.set(channel, ready);
      const current = ready;
      current.catch((e: unknown) => {
        if (this.#channelReady.get(channel) === current) this.#channelReady.delete(channel);
        this.#channelFailed(channel, asError(e));
      });
    }
    const set = listeners;
    let active = true;
    const stop = () => {
      if (!active) return;
      active = false;
      set.delete(listener);
      // The channel goes a tick later, when no listener came back meanwhile
      // (React's StrictMode unmounts and remounts at once).
      setTimeout(() => {
        if (set.size > 0 || !this.#channels.has(channel) || this.#connection.status === "closed") return;
        this.#channelReady.delete(channel);
        this.unsubscribeChannel(channel).catch(() => undefined);
      }, 0);
    };
    return Object.assign(stop, { ready });
  }

  /** A channel's subscribe (or resubscribe) failed: tell its listeners, or the client's error listeners. */
  #channelFailed(channel: Channel, error: Error): void {
    if (error instanceof TourcastError && (error.code === "closed" || error.code === "cancelled")) return;
    let told = false;
    for (const listener of [...(this.#channelListeners.get(channel) ?? [])]) {
      const onError = listener.options.onError;
      if (onError === undefined) continue;
      told = true;
      safely(() => onError(error instanceof TourcastError ? error : new TourcastError("internal", error.message)));
    }
    if (!told) this.#emitError(error);
  }

  #channelGap(channel: Channel): void {
    for (const listener of [...(this.#channelListeners.get(channel) ?? [])]) {
      const onGap = listener.options.onGap;
      if (onGap !== undefined) safely(onGap);
    }
  }

  #deliver(channel: Channel, message: ServerMessage): void {
    for (const listener of [...(this.#channelListeners.get(channel) ?? [])]) safely(() => listener.deliver(message));
  }

  // --- wiring -----------------------------------------------------------------

  /**
   * A connection opened: resubscribe what the application wants, resuming
   * from what it holds (unless a subscribe to the same tour is already
   * waiting), then send the queue.
   */
  #renew(): void {
    const pending = this.#requests.subscribing();
    for (const channel of this.#channels.toRenew((c) => pending.has(channelKey(c)))) {
      this.#requests.request(
        {
          expect: "subscribed",
          resolve: (m) => {
            if (m.recovered === false) this.#channelGap(channel);
          },
        },
        { type: "subscribe", channel },
        (error) => {
          if (error instanceof TourcastError && error.code !== "timeout" && error.code !== "closed") {
            this.#channelFailed(channel, error);
          }
        },
        { sinceMode: "auto", internal: true },
      );
    }
    for (const tourId of this.#subscriptions.toRenew(pending)) {
      this.#requests.request(
        { expect: "subscribed", resolve: () => undefined },
        this.#subscriptions.wantsViewers(tourId) ? { type: "subscribe", tourId, viewers: true } : { type: "subscribe", tourId },
        (error) => {
          if (error instanceof TourcastError && error.code !== "timeout" && error.code !== "closed") {
            this.#emitError(error);
          }
        },
        { sinceMode: "auto", internal: true },
      );
    }
    // Rooms rejoin with `since`; their publishes wait for their `joined`.
    this.#rooms.opened();
    this.#requests.flush();
  }

  /** Updates state and settles requests; returns false for a message handlers must not see. */
  #apply(message: ServerMessage): boolean {
    switch (message.type) {
      case "connection":
        this.#snapshotParts.reset();
        this.#clientId = message.clientId;
        this.#subscriptions.connected(message.epoch);
        this.#emitState();
        return true;
      case "snapshot":
        if (this.#subscriptions.applySnapshot(message) === "changed") this.#emitState();
        return true;
      case "tour.availability.updated":
        return this.#applied(this.#subscriptions.applyUpdate(message));
      case "tour.availability.low":
        return this.#applied(this.#subscriptions.applyLow(message));
      case "notification": {
        const applied = this.#channels.applyNotification(message, this.#subscriptions.epoch ?? "");
        if (applied === "stale") this.#counters.staleDropped += 1;
        if (applied !== "new") return false;
        this.#deliver("notifications", message);
        return true;
      }
      case "stats":
        this.#requests.settle(message.requestId, message);
        this.#channels.applyStats(message);
        this.#deliver("stats", message);
        return true;
      case "unsubscribed":
        if (!this.#requests.settle(message.requestId, message) && message.channel !== undefined) {
          // Not asked for: the server ended the subscription (a refreshed
          // token no longer allows it).
          const channel = message.channel;
          if (this.#channels.has(channel)) {
            this.#channels.unwant(channel);
            this.#channelReady.delete(channel);
            this.#channelFailed(channel, new TourcastError("forbidden", `the server ended the ${channel} subscription`));
          }
        }
        return true;
      case "subscribed":
        this.#channels.applySubscribed(message, this.#subscriptions.epoch ?? "");
        this.#requests.settle(message.requestId, message);
        return true;
      case "pong":
      case "refreshed":
        this.#requests.settle(message.requestId, message);
        return true;
      case "error": {
        if (this.#requests.settle(message.requestId, message)) return true;
        const error = new TourcastError(message.code, message.message, message.path, message.requestId);
        if (!this.#rooms.refused(message.requestId, error)) this.#emitError(error);
        return true;
      }
      case "joined":
      case "left":
      case "room.message":
      case "presence":
      case "published":
        return this.#rooms.apply(message);
      case "viewers": {
        const listeners = this.#viewerListeners.get(message.tourId);
        if (listeners === undefined) return true;
        this.#viewerCounts.set(message.tourId, message);
        for (const listener of [...listeners]) safely(() => listener(message));
        return true;
      }
    }
  }

  #applied(result: ReturnType<Subscriptions["applyUpdate"]>): boolean {
    switch (result) {
      case "unfollowed":
        return false;
      case "stale":
        this.#counters.staleDropped += 1;
        return false;
      case "changed":
        this.#emitState();
        return true;
      case "unchanged":
        return true;
    }
  }

  #dispatch(message: ServerMessage): void {
    for (const key of [message.type, "*"]) {
      const set = this.#handlers.get(key);
      if (set === undefined) continue;
      for (const handler of [...set]) safely(() => handler(message));
    }
  }

  // --- state ------------------------------------------------------------------

  #buildState(): ClientState {
    const connection = this.#connection;
    const state: {
      -readonly [K in keyof ClientState]: ClientState[K];
    } = {
      status: connection.status,
      tours: this.#subscriptions.tours,
      alerts: this.#subscriptions.alerts,
      encoding: connection.codec.encoding,
      attempt: connection.attempt,
      transport: connection.transport,
    };
    const epoch = this.#subscriptions.epoch;
    if (this.#clientId !== undefined) state.clientId = this.#clientId;
    if (epoch !== undefined) state.epoch = epoch;
    if (connection.nextRetryAt !== undefined && connection.status === "reconnecting") {
      state.nextRetryAt = connection.nextRetryAt;
    }
    if (connection.lastClose !== undefined) state.lastClose = connection.lastClose;
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

/**
 * Calls an application callback. A throwing one must not break the client:
 * its exception is reported like an event listener's.
 */
function safely(call: () => void): void {
  try {
    call();
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}
