// The tourcast WebSocket client: typed messages, acknowledged requests,
// an outbound queue while offline, automatic reconnect with recovery, stale
// update protection and dead-connection detection.
//
// TourcastClient is the public face; the work is done by three modules it
// wires together:
// - connection.ts: the socket lifecycle (token, handshake timeout, keep-alive,
//   dead-connection watchdog, reconnect with backoff, token renewal timer);
// - requests.ts: request correlation (`requestId`s, the offline queue, timeouts);
// - subscriptions.ts: the tours wanted, the state held for them, recovery.
// This file routes server messages between them, emits the state and calls
// the application's handlers.

import type { ClientMessage, ServerMessage } from "../index.js";
import {
  asError,
  closedError,
  TourcastError,
  type ClientState,
  type ClientStats,
  type MessageOf,
  type ServerMessageType,
  type SubscribeOptions,
  type TourcastClientOptions,
} from "./api.js";
import { Connection } from "./connection.js";
import { Requests } from "./requests.js";
import { Subscriptions } from "./subscriptions.js";

export {
  CLIENT_CLOSE,
  TourcastError,
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

type AnyHandler = (message: ServerMessage) => void;

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
  readonly #stats: ClientStats = { staleDropped: 0, connections: 0, deadConnections: 0, decodeErrors: 0 };
  readonly #connection: Connection;
  readonly #requests: Requests;
  readonly #subscriptions: Subscriptions;
  #clientId: string | undefined;
  #state: ClientState;

  constructor(options: TourcastClientOptions) {
    this.#subscriptions = new Subscriptions(options);
    this.#connection = new Connection(options, this.#stats, {
      changed: () => this.#emitState(),
      opened: () => this.#renew(),
      lost: () => this.#requests.unsent(),
      gaveUp: () => this.close(),
      message: (message) => {
        if (this.#apply(message)) this.#dispatch(message);
      },
      error: (error) => this.#emitError(error),
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
        since: (tourId) => this.#subscriptions.since(tourId),
        subscribeRefused: (tourId) => this.#subscriptions.drop(tourId),
      },
      options,
    );
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
    return this.#subscriptions.wanted;
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
    const given = options.since;
    const message: ClientMessage =
      given === undefined || given === null
        ? { type: "subscribe", tourId }
        : { type: "subscribe", tourId, since: given };
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

  /** Round trip to the server; resolves with its `pong`. */
  ping(options: { timeoutMs?: number } = {}): Promise<MessageOf<"pong">> {
    if (this.#connection.status === "closed") return Promise.reject(closedError());
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
  }

  // --- wiring -----------------------------------------------------------------

  /**
   * A connection opened: resubscribe what the application wants, resuming
   * from what it holds (unless a subscribe to the same tour is already
   * waiting), then send the queue.
   */
  #renew(): void {
    for (const tourId of this.#subscriptions.toRenew(this.#requests.subscribing())) {
      this.#requests.request(
        { expect: "subscribed", resolve: () => undefined },
        { type: "subscribe", tourId },
        (error) => {
          if (error instanceof TourcastError && error.code !== "timeout" && error.code !== "closed") {
            this.#emitError(error);
          }
        },
        { sinceMode: "auto", internal: true },
      );
    }
    this.#requests.flush();
  }

  /** Updates state and settles requests; returns false for a message handlers must not see. */
  #apply(message: ServerMessage): boolean {
    switch (message.type) {
      case "connection":
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
      case "subscribed":
      case "unsubscribed":
      case "pong":
      case "refreshed":
        this.#requests.settle(message.requestId, message);
        return true;
      case "error":
        if (!this.#requests.settle(message.requestId, message)) {
          this.#emitError(new TourcastError(message.code, message.message, message.path, message.requestId));
        }
        return true;
    }
  }

  #applied(result: ReturnType<Subscriptions["applyUpdate"]>): boolean {
    switch (result) {
      case "unfollowed":
        return false;
      case "stale":
        this.#stats.staleDropped += 1;
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
