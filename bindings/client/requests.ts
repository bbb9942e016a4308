// Request correlation behind TourcastClient: every `subscribe`,
// `unsubscribe`, `ping`, `refresh` and `refreshStats` gets a `requestId`,
// waits (in order, up to a limit) while the client is offline, and is settled
// by the server reply that echoes its id, or rejected after its timeout.

import type { Channel, ClientMessage, StreamPosition } from "../index.js";
import { TourcastError, type MessageOf } from "./api.js";

/** A subscribe or unsubscribe message. */
export type TargetMessage = Extract<ClientMessage, { type: "subscribe" | "unsubscribe" }>;

/**
 * What a subscribe names, as one string: the tour id (or `"*"`), or
 * `#<channel>` for a channel (tour ids never start with `#`).
 */
export type TargetKey = string;

export const channelKey = (channel: Channel): TargetKey => `#${channel}`;

/** The target a subscribe or unsubscribe names. */
export function targetKey(message: TargetMessage): TargetKey {
  return message.channel !== undefined ? channelKey(message.channel) : (message.tourId ?? "");
}

/** What a request waits for, and what to call with it. */
export type Ack =
  | { readonly expect: "subscribed"; readonly resolve: (m: MessageOf<"subscribed">) => void }
  | { readonly expect: "unsubscribed"; readonly resolve: (m: MessageOf<"unsubscribed">) => void }
  | { readonly expect: "pong"; readonly resolve: (m: MessageOf<"pong">) => void }
  | { readonly expect: "refreshed"; readonly resolve: (m: MessageOf<"refreshed">) => void }
  | { readonly expect: "stats"; readonly resolve: (m: MessageOf<"stats">) => void };

/** How a subscribe's `since` is set: from the state held when it is sent, not at all, or as given. */
export type SinceMode = "auto" | "none" | "given";

type Pending = Ack & {
  readonly requestId: string;
  /** The request; a subscribe's `since` is filled in when it is sent. */
  readonly message: ClientMessage;
  readonly sinceMode: SinceMode;
  readonly reject: (e: Error) => void;
  /** Issued by the client itself (a resubscribe after reconnect). */
  readonly internal: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Sent on the current connection (and so not waiting in the queue). */
  sent: boolean;
};

/** What the request table needs from the rest of the client. */
export interface RequestHost {
  /** Whether a connection is open to send on. */
  isOpen(): boolean;
  /** Sends a message now; whether it was handed to the socket. */
  send(message: ClientMessage): boolean;
  /** The position to resume a subscription from (for `since` in `auto` mode). */
  since(target: TargetKey): StreamPosition | undefined;
  /** The server refused a subscribe to `target`. */
  subscribeRefused(target: TargetKey): void;
}

export class Requests {
  readonly #host: RequestHost;
  readonly #timeoutMs: number;
  readonly #maxQueued: number;
  /** Requests not yet acknowledged, in the order they were made. */
  readonly #pending = new Map<string, Pending>();
  readonly #idPrefix = `c${Math.floor(Math.random() * 36 ** 4).toString(36)}-`;
  #nextId = 0;

  constructor(host: RequestHost, options: { requestTimeoutMs?: number | undefined; maxQueuedRequests?: number | undefined }) {
    this.#host = host;
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#maxQueued = options.maxQueuedRequests ?? 1_000;
  }

  /** Makes a request: sent now when connected, else queued (or refused when the queue is full). */
  request(
    ack: Ack,
    message: ClientMessage,
    reject: (e: Error) => void,
    options: { sinceMode: SinceMode; timeoutMs?: number | undefined; internal?: boolean },
  ): void {
    let waiting = 0;
    for (const p of this.#pending.values()) if (!p.sent) waiting += 1;
    if (!this.#host.isOpen() && waiting >= this.#maxQueued) {
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
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    pending.timer = setTimeout(() => {
      this.#settle(pending);
      reject(new TourcastError("timeout", `${message.type} got no answer within ${timeoutMs} ms`, undefined, requestId));
    }, timeoutMs);
    this.#pending.set(requestId, pending);
    if (this.#host.isOpen()) this.#transmit(pending);
  }

  /** Sends every queued request, in order. */
  flush(): void {
    for (const pending of [...this.#pending.values()]) {
      if (!this.#host.isOpen()) return;
      if (!pending.sent) this.#transmit(pending);
    }
  }

  /** The connection ended: every request waits to be sent again. */
  unsent(): void {
    for (const pending of this.#pending.values()) pending.sent = false;
  }

  /** The targets (tours, `#channel`s) a subscribe is pending for. */
  subscribing(): Set<TargetKey> {
    const targets = new Set<TargetKey>();
    for (const pending of this.#pending.values()) {
      if (pending.message.type === "subscribe") targets.add(targetKey(pending.message));
    }
    return targets;
  }

  /** Cancels the subscribes to `target` still waiting to be sent. */
  cancelSubscribe(target: TargetKey): void {
    for (const pending of [...this.#pending.values()]) {
      const m = pending.message;
      if (!pending.sent && m.type === "subscribe" && targetKey(m) === target) {
        this.#settle(pending);
        pending.reject(new TourcastError("cancelled", `subscribe to ${target} cancelled by unsubscribe`));
      }
    }
  }

  /** Rejects every request with `error` (the client is closing). */
  rejectAll(error: () => Error): void {
    for (const pending of this.#pending.values()) clearTimeout(pending.timer);
    for (const pending of [...this.#pending.values()]) {
      this.#settle(pending);
      pending.reject(error());
    }
  }

  /**
   * Settles the request `requestId` with its acknowledgement or error.
   * Returns whether a request was settled.
   */
  settle(
    requestId: string | undefined,
    message: MessageOf<"subscribed" | "unsubscribed" | "pong" | "refreshed" | "stats" | "error">,
  ): boolean {
    if (requestId === undefined) return false;
    const pending = this.#pending.get(requestId);
    if (pending === undefined) return false;
    this.#settle(pending);
    switch (message.type) {
      case "error":
        if (pending.message.type === "subscribe") this.#host.subscribeRefused(targetKey(pending.message));
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
      case "stats":
        if (pending.expect === "stats") pending.resolve(message);
        return true;
    }
  }

  #transmit(pending: Pending): void {
    let message = pending.message;
    if (message.type === "subscribe" && pending.sinceMode === "auto") {
      const since = this.#host.since(targetKey(message));
      message = since === undefined ? message : { ...message, since };
    }
    if (this.#host.send(message)) pending.sent = true;
  }

  /** Removes a request from the table and stops its timer. */
  #settle(pending: Pending): void {
    clearTimeout(pending.timer);
    this.#pending.delete(pending.requestId);
  }
}
