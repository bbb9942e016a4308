// Rooms behind TourcastClient (SPEC "Rooms"): what `client.room(name)`
// returns. A Room owns one room's membership as the application wants it
// (kept across reconnects, rejoined with `since`), its live member list, the
// recent messages (deduplicated by `seq`), and its publishes: queued while
// the room is not joined on an open connection, sent after the (re)join,
// each promise settled exactly once. `Rooms` is the registry the client
// routes room messages and room errors through.
//
// Room requests do not go through requests.ts: a publish must wait for its
// room's rejoin, not merely for a connection (the generic queue would send it
// before the `join` and the server would refuse it), and its timeout counts
// from when it is sent, not from the call, so that a publish made offline
// waits for the network instead of failing.

import type { ClientMessage, Joined, Presence, RoomMember, RoomMessage, StreamPosition } from "../index.js";
import { TourcastError, type MessageOf } from "./api.js";

/** A structured payload of a room message (e.g. a collaborative edit `{field, value}`), at most 8 KiB as JSON. */
export type RoomData = Record<string, unknown>;

/** A `room.message` as handlers receive it (`data` when the publisher set one). */
export type RoomMessageOf = RoomMessage;

/** What `publish` resolves with: the message's position in the stream and its id. */
export interface PublishResult {
  readonly seq: number;
  readonly messageId: string;
}

/**
 * - `idle`: never joined (or left);
 * - `joining`: `join` asked for, waiting for a connection or for `joined`;
 * - `joined`: a member on the current connection;
 * - `rejoining`: the connection was lost; the room is joined again (with
 *   `since`) on the next one.
 */
export type RoomStatus = "idle" | "joining" | "joined" | "rejoining";

/** One room as a UI shows it: an immutable value replaced on every change. */
export interface RoomState {
  readonly room: string;
  readonly status: RoomStatus;
  /** A member on the current connection. */
  readonly joined: boolean;
  /** Who is in the room (at most 100 from `joined`, then kept by `presence`), in arrival order. */
  readonly members: readonly RoomMember[];
  /** How many users are in the room, exactly (from `joined` and every `presence`). */
  readonly memberCount: number;
  /** The recent messages, oldest first, at most `maxMessages`, each once. */
  readonly messages: readonly RoomMessageOf[];
  /** Publishes waiting for the room to be joined on an open connection. */
  readonly queued: number;
  /** The last `join` (or rejoin) refused, or the server took the connection out of the room. */
  readonly error?: TourcastError;
  /** The last rejoin with `since` could not recover what was missed (`recovered: false`). */
  readonly gap?: boolean;
}

/** Typed room events of {@link Room.on}. */
export interface RoomEvents {
  /** A new message (never one already delivered: messages are deduplicated by `seq`). */
  message: RoomMessageOf;
  /** Someone joined or left (or, in a large room, only `memberCount` changed). */
  presence: Presence;
  /** The server's `joined`, on the first join and on every rejoin. */
  joined: Joined;
  /** A rejoin was refused, or the server took the connection out of the room. */
  error: TourcastError;
}

export interface RoomOptions {
  /** Recent messages kept in `state.messages` (default 200). */
  maxMessages?: number;
}

/** What a room needs from the client. */
export interface RoomHost {
  /** Whether a connection is open to send on. */
  isOpen(): boolean;
  /** Sends a message now; whether it was handed to the socket. */
  send(message: ClientMessage): boolean;
  /** The epoch of the current connection (`seq`s count in it). */
  epoch(): string | undefined;
  /** The client was closed for good. */
  isClosed(): boolean;
  /** The error for `operation` when the connection cannot send it (an SSE stream), else undefined. */
  unsupported(operation: "join" | "leave" | "publish"): TourcastError | undefined;
  /** A fresh `requestId`. */
  requestId(): string;
  /** Takes a publish token: 0 when one was taken, else how many ms until the next one. */
  pace(): number;
  readonly requestTimeoutMs: number;
  readonly maxQueuedPublishes: number;
}

type Handler<K extends keyof RoomEvents> = (event: RoomEvents[K]) => void;

interface PendingPublish {
  readonly text: string;
  readonly data: RoomData | undefined;
  readonly resolve: (result: PublishResult) => void;
  readonly reject: (error: TourcastError) => void;
  /** Set once sent on a connection: the id its `published` or `error` echoes. */
  requestId: string | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface PendingRequest<T> {
  readonly requestId: string;
  readonly resolve: (value: T) => void;
  readonly reject: (error: TourcastError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const EMPTY_MEMBERS: readonly RoomMember[] = [];

/**
 * One room of a client (`client.room("support_42")`; the same object for the
 * same name).
 *
 * ```ts
 * const room = client.room("support_42");
 * room.on("message", (m) => show(m.from.userId, m.text, m.seq));
 * room.on("presence", (p) => console.log(p.userId, p.action, p.memberCount));
 * await room.join();
 * const { seq } = await room.publish("Bonjour !");
 * ```
 */
export class Room {
  readonly name: string;
  readonly #host: RoomHost;
  readonly #maxMessages: number;
  readonly #handlers = new Map<keyof RoomEvents, Set<(event: never) => void>>();
  readonly #stateListeners = new Set<(state: RoomState) => void>();

  /** The application wants to be a member (from `join()` until `leave()` or a refusal). */
  #wanted = false;
  /** A member on the current connection (`joined` received on it). */
  #joinedHere = false;
  /** The `join` sent on the current connection, waiting for `joined` (its id). */
  #joinInFlight: string | undefined;
  /** What `join()` callers wait for: the next `joined` (or the refusal). */
  #joinWaiters: { resolve: (m: Joined) => void; reject: (e: TourcastError) => void }[] = [];
  #joinTimer: ReturnType<typeof setTimeout> | undefined;
  #leaves = new Map<string, PendingRequest<MessageOf<"left"> | undefined>>();

  /** The newest message delivered: where a rejoin resumes from, and below which messages are duplicates. */
  #last: StreamPosition | undefined;
  /** `joined.seq` of the last join: where a rejoin resumes from when no message arrived. */
  #joinedAt: StreamPosition | undefined;

  readonly #members = new Map<string, RoomMember>();
  #memberCount = 0;
  #messages: readonly RoomMessageOf[] = [];
  /** Publishes not yet sent, in call order. */
  #queue: PendingPublish[] = [];
  /** Publishes sent on the current connection, by `requestId`. */
  readonly #inFlight = new Map<string, PendingPublish>();
  #error: TourcastError | undefined;
  #gap = false;
  /** A flush waiting for the next publish token. */
  #paceTimer: ReturnType<typeof setTimeout> | undefined;
  #state: RoomState;

  constructor(name: string, host: RoomHost, options: RoomOptions = {}) {
    this.name = name;
    this.#host = host;
    this.#maxMessages = Math.max(1, options.maxMessages ?? 200);
    this.#state = this.#buildState();
  }

  // --- public API ------------------------------------------------------------

  /** The current state (a new object after every change). */
  get state(): RoomState {
    return this.#state;
  }
  /** Same as `state`; for `useSyncExternalStore`. */
  getState = (): RoomState => this.#state;
  /** Calls `listener` after every change of `state`. Returns an unsubscribe function. */
  subscribeState = (listener: (state: RoomState) => void): (() => void) => {
    this.#stateListeners.add(listener);
    return () => {
      this.#stateListeners.delete(listener);
    };
  };

  /** Who is in the room (at most 100 from `joined`, kept up to date by `presence`). */
  get members(): readonly RoomMember[] {
    return this.#state.members;
  }
  /** How many users are in the room, exactly. */
  get memberCount(): number {
    return this.#memberCount;
  }
  /** A member on the current connection. */
  get joined(): boolean {
    return this.#joinedHere;
  }
  /** The application wants to be a member (kept across reconnects). */
  get wanted(): boolean {
    return this.#wanted;
  }

  /** Calls `handler` with every event of `type`, narrowed to it. Returns a function that removes it. */
  on<K extends keyof RoomEvents>(type: K, handler: Handler<K>): () => void {
    let set = this.#handlers.get(type);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    // Stored under its own type and only called with events of it (#emit).
    const stored = handler as (event: never) => void;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }

  /**
   * Joins the room and stays a member across reconnects (rejoining with
   * `since`, so exactly the messages missed arrive). Resolves with the
   * server's `joined` (the recent messages follow it); rejects with a
   * {@link TourcastError} (`forbidden` outside the token's `rooms` claim, or
   * on a gateway without `--rooms-open`; `timeout`; `closed`). Called while
   * offline, it waits for the connection. Joining a joined room resolves at
   * once with the last `joined`.
   */
  join(): Promise<Joined> {
    if (this.#host.isClosed()) return Promise.reject(closed());
    const unsupported = this.#host.unsupported("join");
    if (unsupported !== undefined) return Promise.reject(unsupported);
    return new Promise<Joined>((resolve, reject) => {
      if (this.#joinedHere && this.#lastJoined !== undefined) {
        resolve(this.#lastJoined);
        return;
      }
      this.#joinWaiters.push({ resolve, reject });
      if (!this.#wanted) {
        this.#wanted = true;
        this.#error = undefined;
        this.#changed();
      }
      if (this.#host.isOpen() && this.#joinInFlight === undefined) this.#sendJoin();
    });
  }

  /**
   * Leaves the room: no rejoin after a reconnect, queued and unanswered
   * publishes rejected (code `cancelled`), a pending `join()` too. Resolves
   * with the server's `left`, or `undefined` when there was nothing to tell
   * the server (offline, or never joined).
   */
  leave(): Promise<MessageOf<"left"> | undefined> {
    if (this.#host.isClosed()) return Promise.reject(closed());
    const unsupported = this.#host.unsupported("leave");
    if (unsupported !== undefined) return Promise.reject(unsupported);
    const wasMember = this.#joinedHere || this.#joinInFlight !== undefined;
    this.#wanted = false;
    this.#forget(new TourcastError("cancelled", `left room ${this.name}`));
    this.#changed();
    if (!wasMember || !this.#host.isOpen()) return Promise.resolve(undefined);
    const requestId = this.#host.requestId();
    return new Promise((resolve, reject) => {
      const pending: PendingRequest<MessageOf<"left"> | undefined> = { requestId, resolve, reject, timer: undefined };
      pending.timer = setTimeout(() => {
        this.#leaves.delete(requestId);
        reject(new TourcastError("timeout", `leave got no answer within ${this.#host.requestTimeoutMs} ms`, undefined, requestId));
      }, this.#host.requestTimeoutMs);
      this.#leaves.set(requestId, pending);
      if (!this.#host.send({ type: "leave", room: this.name, requestId })) {
        clearTimeout(pending.timer);
        this.#leaves.delete(requestId);
        resolve(undefined);
      }
    });
  }

  /**
   * Posts `text` (1 to 4,096 characters), with an optional structured
   * `data` object, into the room. Resolves with its stream position once the
   * server confirms it is in the stream (`published`); every member, this
   * client included, also receives it as a `message`. Rejects (exactly once)
   * with a {@link TourcastError}: the server's code (`unavailable` when the
   * broker did not confirm, `forbidden`, `invalid_message`, `rate_limited`),
   * or `not_joined` (call `join()` first), `queue_full` (more than
   * `maxQueuedPublishes` waiting), `cancelled` (`leave()`), `closed`,
   * `timeout`, or `unconfirmed`: the connection was lost after it was sent
   * and before the server answered, so it may or may not have been posted
   * (it is not sent again, which could post it twice; its `message` shows
   * whether it was).
   *
   * Made while offline (or before the join completes) it waits, in order,
   * and is sent once the room is joined again.
   */
  publish(text: string, data?: RoomData): Promise<PublishResult> {
    if (this.#host.isClosed()) return Promise.reject(closed());
    const unsupported = this.#host.unsupported("publish");
    if (unsupported !== undefined) return Promise.reject(unsupported);
    if (!this.#wanted) return Promise.reject(new TourcastError("not_joined", `join room ${this.name} before publishing`));
    return new Promise<PublishResult>((resolve, reject) => {
      const ready = this.#joinedHere && this.#host.isOpen();
      if (this.#queue.length >= this.#host.maxQueuedPublishes) {
        reject(new TourcastError("queue_full", `${this.#queue.length} publishes already wait for room ${this.name}`));
        return;
      }
      const pending: PendingPublish = { text, data, resolve, reject, requestId: undefined, timer: undefined };
      this.#queue.push(pending);
      if (ready) this.#flush();
      // Still waiting (offline, or paced): `queued` changed.
      if (this.#queue.includes(pending)) this.#changed();
    });
  }

  // --- from the client ---------------------------------------------------------

  /** A connection opened: rejoin (with `since`) when the room is wanted. */
  opened(): void {
    if (!this.#wanted || this.#joinInFlight !== undefined) return;
    const unsupported = this.#host.unsupported("join");
    if (unsupported !== undefined) {
      // The connection is an SSE stream (`auto` fell back, perhaps only for
      // a moment during an outage): nothing can be sent. The room, a
      // pending join() and queued publishes wait, as offline, and go out
      // once the client is back on WebSocket; meanwhile the room's `error`
      // says why (cleared by the next `joined`).
      if (this.#error === undefined) {
        this.#error = unsupported;
        this.#emit("error", unsupported);
        this.#changed();
      }
      return;
    }
    this.#sendJoin();
  }

  /** The connection ended: not a member any more; what was sent on it is unanswered. */
  lost(): void {
    const was = this.#joinedHere || this.#joinInFlight !== undefined;
    this.#joinedHere = false;
    this.#joinInFlight = undefined;
    clearTimeout(this.#joinTimer);
    for (const pending of [...this.#inFlight.values()]) {
      this.#settlePublish(pending);
      pending.reject(
        new TourcastError(
          "unconfirmed",
          "the connection was lost before the server confirmed this publish: it may or may not have been posted",
          undefined,
          pending.requestId,
        ),
      );
    }
    for (const leave of this.#leaves.values()) {
      clearTimeout(leave.timer);
      // Closing the connection leaves every room.
      leave.resolve(undefined);
    }
    this.#leaves.clear();
    if (was || this.#wanted) this.#changed();
  }

  /** The client closed for good: everything pending is rejected with `closed`. */
  closed(): void {
    this.#wanted = false;
    this.#forget(closed());
    for (const leave of this.#leaves.values()) {
      clearTimeout(leave.timer);
      leave.resolve(undefined);
    }
    this.#leaves.clear();
    this.#changed();
  }

  /** Applies a room message addressed to this room; returns whether handlers of the client should see it. */
  apply(message: MessageOf<"joined" | "left" | "room.message" | "presence" | "published">): boolean {
    switch (message.type) {
      case "joined":
        return this.#applyJoined(message);
      case "left":
        return this.#applyLeft(message);
      case "room.message":
        return this.#applyMessage(message);
      case "presence":
        return this.#applyPresence(message);
      case "published": {
        const pending = message.requestId === undefined ? undefined : this.#inFlight.get(message.requestId);
        if (pending === undefined) return true;
        this.#settlePublish(pending);
        pending.resolve({ seq: message.seq, messageId: message.messageId });
        return true;
      }
    }
  }

  /** The server refused the request `requestId` if it is one of this room's; returns whether it was. */
  refused(requestId: string, error: TourcastError): boolean {
    const publish = this.#inFlight.get(requestId);
    if (publish !== undefined) {
      this.#settlePublish(publish);
      publish.reject(error);
      this.#changed();
      return true;
    }
    if (this.#joinInFlight === requestId) {
      // A refused join (or rejoin): the room is not wanted any more, and
      // nothing waiting for it can succeed.
      this.#joinInFlight = undefined;
      clearTimeout(this.#joinTimer);
      this.#wanted = false;
      this.#error = error;
      const hadWaiters = this.#joinWaiters.length > 0;
      this.#forget(error);
      if (!hadWaiters) this.#emit("error", error);
      this.#changed();
      return true;
    }
    const leave = this.#leaves.get(requestId);
    if (leave !== undefined) {
      clearTimeout(leave.timer);
      this.#leaves.delete(requestId);
      leave.reject(error);
      return true;
    }
    return false;
  }

  // --- internals ----------------------------------------------------------------

  #lastJoined: Joined | undefined;

  #sendJoin(): void {
    const requestId = this.#host.requestId();
    const since = this.#since();
    const message: ClientMessage =
      since === undefined ? { type: "join", room: this.name, requestId } : { type: "join", room: this.name, requestId, since };
    if (!this.#host.send(message)) return;
    this.#joinInFlight = requestId;
    clearTimeout(this.#joinTimer);
    this.#joinTimer = setTimeout(() => {
      if (this.#joinInFlight !== requestId) return;
      // No answer: the connection is probably dead; the watchdog will cut it
      // and the next connection rejoins. Callers of join() are told now.
      const error = new TourcastError("timeout", `join got no answer within ${this.#host.requestTimeoutMs} ms`, undefined, requestId);
      for (const waiter of this.#joinWaiters.splice(0)) waiter.reject(error);
    }, this.#host.requestTimeoutMs);
  }

  /** Where a rejoin resumes: the last message delivered, else the last `joined`'s position. */
  #since(): StreamPosition | undefined {
    return this.#last ?? this.#joinedAt;
  }

  #applyJoined(message: Joined): boolean {
    if (message.requestId === undefined || message.requestId !== this.#joinInFlight) {
      // An answer to a join this room no longer waits for (left meanwhile).
      return false;
    }
    this.#joinInFlight = undefined;
    clearTimeout(this.#joinTimer);
    this.#joinedHere = true;
    this.#lastJoined = message;
    this.#error = undefined;
    const epoch = this.#host.epoch() ?? "";
    this.#joinedAt = { epoch, seq: message.seq };
    // A message position from another epoch (the server's history was
    // reset) is no reason to drop anything on this one.
    if (this.#last !== undefined && this.#last.epoch !== epoch) this.#last = undefined;
    this.#gap = message.recovered === false;
    this.#members.clear();
    for (const member of message.members) this.#members.set(member.userId, member);
    this.#memberCount = message.memberCount;
    for (const waiter of this.#joinWaiters.splice(0)) waiter.resolve(message);
    this.#emit("joined", message);
    this.#flush();
    this.#changed();
    return true;
  }

  #applyLeft(message: MessageOf<"left">): boolean {
    const leave = message.requestId === undefined ? undefined : this.#leaves.get(message.requestId);
    if (leave !== undefined) {
      clearTimeout(leave.timer);
      this.#leaves.delete(leave.requestId);
      leave.resolve(message);
      return true;
    }
    if (!this.#wanted && !this.#joinedHere) return false;
    // Not asked for: the server took the connection out of the room (a
    // refreshed token no longer allows it).
    const error = new TourcastError("forbidden", `the server ended the membership of room ${this.name}`);
    this.#joinedHere = false;
    this.#wanted = false;
    this.#error = error;
    this.#forget(error);
    this.#emit("error", error);
    this.#changed();
    return true;
  }

  #applyMessage(message: RoomMessageOf): boolean {
    // Messages still in flight after a leave are not the application's any more.
    if (!this.#wanted) return false;
    const epoch = this.#host.epoch() ?? "";
    const last = this.#last;
    if (last !== undefined && last.epoch === epoch && message.seq <= last.seq) return false;
    this.#last = { epoch, seq: message.seq };
    const held = this.#messages;
    this.#messages = held.length >= this.#maxMessages ? [...held.slice(held.length - this.#maxMessages + 1), message] : [...held, message];
    this.#emit("message", message);
    this.#changed();
    return true;
  }

  #applyPresence(message: Presence): boolean {
    if (!this.#joinedHere) return false;
    const userId = message.userId;
    if (message.action === "joined" && userId !== undefined) this.#members.set(userId, { userId });
    else if (message.action === "left" && userId !== undefined) this.#members.delete(userId);
    this.#memberCount = message.memberCount;
    this.#emit("presence", message);
    this.#changed();
    return true;
  }

  /** Sends the queued publishes, in order, while the room is joined on an open connection. */
  #flush(): void {
    let changed = false;
    while (this.#queue.length > 0 && this.#joinedHere && this.#host.isOpen() && this.#paceTimer === undefined) {
      const wait = this.#host.pace();
      if (wait > 0) {
        // Over the gateway's publish bucket: the rest goes when it refills.
        this.#paceTimer = setTimeout(() => {
          this.#paceTimer = undefined;
          this.#flush();
        }, wait);
        break;
      }
      const pending = this.#queue[0]!;
      const requestId = this.#host.requestId();
      const message: ClientMessage =
        pending.data === undefined
          ? { type: "publish", room: this.name, text: pending.text, requestId }
          : { type: "publish", room: this.name, text: pending.text, requestId, data: pending.data };
      const sent = this.#host.send(message);
      if (!sent) break;
      this.#queue.shift();
      pending.requestId = requestId;
      pending.timer = setTimeout(() => {
        this.#settlePublish(pending);
        pending.reject(
          new TourcastError("timeout", `publish got no answer within ${this.#host.requestTimeoutMs} ms`, undefined, requestId),
        );
      }, this.#host.requestTimeoutMs);
      this.#inFlight.set(requestId, pending);
      changed = true;
    }
    if (changed) this.#changed();
  }

  #settlePublish(pending: PendingPublish): void {
    clearTimeout(pending.timer);
    if (pending.requestId !== undefined) this.#inFlight.delete(pending.requestId);
  }

  /** Rejects every publish (queued or sent) and every `join()` waiting; forgets the membership. */
  #forget(error: TourcastError): void {
    clearTimeout(this.#paceTimer);
    this.#paceTimer = undefined;
    this.#joinedHere = false;
    this.#joinInFlight = undefined;
    clearTimeout(this.#joinTimer);
    for (const waiter of this.#joinWaiters.splice(0)) waiter.reject(error);
    const queued = this.#queue.splice(0);
    const sent = [...this.#inFlight.values()];
    for (const pending of sent) this.#settlePublish(pending);
    for (const pending of [...sent, ...queued]) pending.reject(error);
    this.#members.clear();
    this.#memberCount = 0;
  }

  #emit<K extends keyof RoomEvents>(type: K, event: RoomEvents[K]): void {
    const set = this.#handlers.get(type);
    if (set === undefined) return;
    for (const handler of [...set]) safely(() => (handler as Handler<K>)(event));
  }

  #status(): RoomStatus {
    if (this.#joinedHere) return "joined";
    if (!this.#wanted) return "idle";
    return this.#lastJoined === undefined ? "joining" : "rejoining";
  }

  #buildState(): RoomState {
    const state: { -readonly [K in keyof RoomState]: RoomState[K] } = {
      room: this.name,
      status: this.#status(),
      joined: this.#joinedHere,
      members: this.#members.size === 0 ? EMPTY_MEMBERS : [...this.#members.values()],
      memberCount: this.#memberCount,
      messages: this.#messages,
      queued: this.#queue.length,
    };
    if (this.#error !== undefined) state.error = this.#error;
    if (this.#gap) state.gap = true;
    return state;
  }

  #changed(): void {
    this.#state = this.#buildState();
    for (const listener of [...this.#stateListeners]) safely(() => listener(this.#state));
  }
}

/**
 * The gateway's publish bucket as the client keeps to it: `burst` tokens,
 * refilled at `perSecond`. One per connection, shared by its rooms, as on
 * the server.
 */
export class PublishPacer {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at = Date.now();

  constructor(options: { perSecond: number; burst: number }) {
    // 10 % under the gateway's rate: the network's jitter must not bring two
    // sends closer together than its bucket allows.
    this.#perMs = (Math.max(1e-6, options.perSecond) * 0.9) / 1000;
    this.#burst = Math.max(1, options.burst);
    this.#tokens = this.#burst;
  }

  /** 0 when a token was taken, else the ms until the next one. */
  take(): number {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.#perMs));
  }
}

/** The rooms of one client, by name: what the client routes room messages through. */
export class Rooms {
  readonly #rooms = new Map<string, Room>();
  readonly #host: RoomHost;

  constructor(host: RoomHost) {
    this.#host = host;
  }

  /** The room `name` (created on first use; the same object afterwards). */
  get(name: string, options?: RoomOptions): Room {
    let room = this.#rooms.get(name);
    if (room === undefined) {
      room = new Room(name, this.#host, options);
      this.#rooms.set(name, room);
    }
    return room;
  }

  /** The names of the rooms the application is a member of (or joining). */
  get wanted(): ReadonlySet<string> {
    return new Set([...this.#rooms.values()].filter((r) => r.wanted).map((r) => r.name));
  }

  opened(): void {
    for (const room of this.#rooms.values()) room.opened();
  }
  lost(): void {
    for (const room of this.#rooms.values()) room.lost();
  }
  closed(): void {
    for (const room of this.#rooms.values()) room.closed();
  }

  /** Routes a room message to its room; returns whether handlers of the client should see it. */
  apply(message: MessageOf<"joined" | "left" | "room.message" | "presence" | "published">): boolean {
    const room = this.#rooms.get(message.room);
    return room === undefined ? false : room.apply(message);
  }

  /** An `error` echoing `requestId`: settles the room request it answers; returns whether one did. */
  refused(requestId: string | undefined, error: TourcastError): boolean {
    if (requestId === undefined) return false;
    for (const room of this.#rooms.values()) if (room.refused(requestId, error)) return true;
    return false;
  }
}

const closed = (): TourcastError => new TourcastError("closed", "the client is closed");

/** Calls an application callback; a throwing one must not break the room (reported like an event listener's). */
function safely(call: () => void): void {
  try {
    call();
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}
