// Server-Sent Events behind TourcastClient (SPEC "Transports"): `GET /sse`
// with the subscriptions in the query, read by an EventSource (the browser's,
// or the npm `eventsource` package's in Node).
//
// `SseSocket` looks like a WebSocket to `Connection`, so that everything above
// it (requests, subscriptions, the store, snapshots, recovery, the hooks) works
// unchanged:
// - each event's `data` is handed on as a text frame, as a WebSocket would;
// - a `subscribe` or `unsubscribe` "sent" on it changes the set the stream is
//   opened with: the stream is reopened with the new set (debounced), resuming
//   with `lastEventId=` when it covers nothing new; the server's `subscribed`
//   acks in the stream are given the `requestId` of the request they answer;
//   an `unsubscribe` is answered at once;
// - anything else (rooms, `ping`, `refresh`, `refreshStats`) cannot be sent:
//   the client refuses those with a `TransportError` before they get here.
//
// Reconnecting is the client's (backoff, a fresh token), not the
// EventSource's own: on any error the EventSource is closed and `onclose`
// reported, and the next connection resumes from the last event id seen.

import type { Channel, ClientMessage } from "../index.js";
import type { ServerMessageType, WebSocketLike } from "./api.js";
import { jsonCodec } from "./codec.js";

// Method-style parameter checking, so that the DOM's EventSource and the npm
// package's both satisfy EventSourceLike.
type Listener<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/** What the client reads of an SSE event (a DOM `MessageEvent`). */
export interface SseMessageEvent {
  readonly data: unknown;
  readonly lastEventId?: string;
}

/** The part of the EventSource API the client uses (the DOM's, or the npm `eventsource` package's). */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: Listener<SseMessageEvent>): void;
  onopen: Listener<unknown> | null;
  onerror: Listener<unknown> | null;
  close(): void;
}

/** An EventSource class: `globalThis.EventSource` in browsers, `EventSource` from the `eventsource` package in Node. */
export type EventSourceFactory = new (url: string) => EventSourceLike;

/** The transport a client uses: `auto` tries WebSocket first and falls back to SSE. */
export type Transport = "websocket" | "sse" | "auto";

/** What an SSE stream is opened with (the query of `GET /sse`). */
export interface SseTargets {
  /** Tour ids, or `"*"` for every tour. */
  readonly tours: ReadonlySet<string>;
  readonly channels: ReadonlySet<Channel>;
  /** Tours whose `viewers` count is wanted. */
  readonly viewers: ReadonlySet<string>;
}

/** Every server message type: each is an SSE event name (`event: <type>`). */
const EVENT_TYPES: Record<ServerMessageType, true> = {
  connection: true,
  subscribed: true,
  unsubscribed: true,
  snapshot: true,
  "tour.availability.updated": true,
  "tour.availability.low": true,
  pong: true,
  error: true,
  refreshed: true,
  notification: true,
  stats: true,
  joined: true,
  left: true,
  "room.message": true,
  presence: true,
  published: true,
  viewers: true,
};
export const SSE_EVENT_TYPES = Object.keys(EVENT_TYPES) as ServerMessageType[];

/**
 * The `/sse` URL beside a WebSocket URL: `ws:` becomes `http:`, `wss:`
 * `https:`, a path ending in `/ws` ends in `/sse` instead (any other path
 * becomes `/sse`), and the query names `targets` (none: every tour), the
 * token and where to resume from.
 */
export function sseUrl(
  wsUrl: string,
  targets: SseTargets,
  options: { token?: string | undefined; lastEventId?: string | undefined } = {},
): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : url.protocol;
  url.pathname = url.pathname.endsWith("/ws") ? `${url.pathname.slice(0, -3)}/sse` : "/sse";
  url.hash = "";
  const query: string[] = [];
  const all = targets.tours.has("*");
  // With "*" the named tours are covered already (and `viewers` is refused with `*`).
  const tours = all ? ["*"] : [...targets.tours].sort();
  const channels = [...targets.channels].sort();
  // An empty `tours=` is nothing, as for a WebSocket with no subscriptions
  // (no parameter at all would be every tour).
  if (tours.length > 0 || channels.length === 0) query.push(`tours=${tours.map(encodeURIComponent).join(",")}`);
  if (channels.length > 0) query.push(`channels=${channels.map(encodeURIComponent).join(",")}`);
  if (!all && [...targets.viewers].some((t) => targets.tours.has(t))) query.push("viewers=1");
  if (options.token !== undefined && options.token !== "") query.push(`token=${encodeURIComponent(options.token)}`);
  if (options.lastEventId !== undefined && options.lastEventId !== "") {
    query.push(`lastEventId=${encodeURIComponent(options.lastEventId)}`);
  }
  url.search = query.length > 0 ? `?${query.join("&")}` : "";
  return url.toString();
}

/** The query part that depends on the targets only: two sets give the same stream when their keys are equal. */
export function targetsKey(targets: SseTargets): string {
  return sseUrl("ws://k/ws", targets).slice("http://k/sse".length);
}

/** Whether a stream for `next` would deliver something `covered` did not (a new tour, channel or viewers count). */
export function addsTargets(covered: SseTargets, next: SseTargets): boolean {
  const coveredAll = covered.tours.has("*");
  for (const tour of next.tours) if (!coveredAll && !covered.tours.has(tour)) return true;
  for (const channel of next.channels) if (!covered.channels.has(channel)) return true;
  for (const tour of next.viewers) {
    if (next.tours.has(tour) && !next.tours.has("*") && !covered.viewers.has(tour)) return true;
  }
  return false;
}

/**
 * A debounced call: `schedule()` runs `fn` once, `delayMs` after the last
 * call. The timer functions are injectable (tests).
 */
export class Debouncer {
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    readonly delayMs: number,
    readonly fn: () => void,
    readonly timers: { setTimeout: typeof setTimeout; clearTimeout: typeof clearTimeout } = globalThis,
  ) {}
  get pending(): boolean {
    return this.#timer !== undefined;
  }
  schedule(): void {
    this.timers.clearTimeout(this.#timer);
    this.#timer = this.timers.setTimeout(() => {
      this.#timer = undefined;
      this.fn();
    }, this.delayMs);
  }
  cancel(): void {
    this.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** What survives from one SSE connection to the next (owned by the client's connection). */
export interface SseResume {
  /** The last event id seen: where the next stream resumes from. */
  lastEventId: string | undefined;
  /** The targets `lastEventId` covers (its stream's): a next stream resumes only when it asks for nothing more. */
  covered: SseTargets | undefined;
}

export interface SseSocketOptions {
  readonly EventSource: EventSourceFactory;
  /** What the application wants now (the client's subscriptions and channels). */
  readonly targets: () => SseTargets;
  readonly resume: SseResume;
  /** How long subscription changes are gathered before the stream is reopened, in ms. */
  readonly debounceMs: number;
}

type TargetKey = string;
const keyOf = (m: { tourId?: string | undefined; channel?: Channel | undefined }): TargetKey =>
  m.channel !== undefined ? `#${m.channel}` : (m.tourId ?? "");

/** An SSE connection presented as a WebSocket (see the top of this file). */
export class SseSocket implements WebSocketLike {
  binaryType = "arraybuffer";
  /** SSE is JSON only. */
  readonly protocol = jsonCodec.subprotocol;
  onopen: WebSocketLike["onopen"] = null;
  onmessage: WebSocketLike["onmessage"] = null;
  onclose: WebSocketLike["onclose"] = null;
  onerror: WebSocketLike["onerror"] = null;

  readonly #base: string;
  readonly #token: string | undefined;
  readonly #options: SseSocketOptions;
  readonly #swap: Debouncer;
  #source: EventSourceLike | null = null;
  /** The targets the current stream was opened with. */
  #targets: SseTargets | undefined;
  #opened = false;
  #closed = false;
  /** requestIds of the subscribes waiting for their ack, by target. */
  readonly #waiting = new Map<TargetKey, string[]>();
  /** The acks the current stream sent, by target: a later subscribe to the same target is answered with a copy. */
  readonly #acks = new Map<TargetKey, Record<string, unknown>>();

  /** `url` is the WebSocket URL the client would open (with `?token=`). */
  constructor(url: string, _protocols: string | string[] | undefined, options: SseSocketOptions) {
    const parsed = new URL(url);
    this.#token = parsed.searchParams.get("token") ?? undefined;
    parsed.searchParams.delete("token");
    this.#base = parsed.toString();
    this.#options = options;
    this.#swap = new Debouncer(options.debounceMs, () => this.#reopen());
    // Subscriptions made right after the client was created are in the first stream.
    setTimeout(() => {
      if (!this.#closed) this.#start();
    }, 0);
  }

  /** The URL of the current stream (tests, diagnostics). */
  url: string | undefined;

  send(data: string | ArrayBufferView): void {
    if (this.#closed || typeof data !== "string") return;
    const message = JSON.parse(data) as ClientMessage;
    if (message.type === "subscribe") {
      const key = keyOf(message);
      const requestId = message.requestId;
      const all = this.#acks.get("*");
      // A tour the stream's `*` covers (its viewers count cannot be had with `*`).
      const ack =
        this.#acks.get(key) ?? (message.channel === undefined && key !== "*" && all !== undefined ? { ...all, tourId: key } : undefined);
      const viewersNew =
        message.viewers === true && this.#targets !== undefined && !this.#targets.tours.has("*") && !this.#targets.viewers.has(key);
      if (ack !== undefined && !viewersNew) {
        if (requestId !== undefined) this.#deliverLater({ ...ack, requestId });
        return;
      }
      if (requestId !== undefined) this.#waiting.set(key, [...(this.#waiting.get(key) ?? []), requestId]);
      this.#changed();
    } else if (message.type === "unsubscribe") {
      const key = keyOf(message);
      const target = message.channel !== undefined ? { channel: message.channel } : { tourId: message.tourId };
      this.#acks.delete(key);
      // Subscribes still waiting for this target are answered first, as the server would.
      for (const requestId of this.#waiting.get(key) ?? []) this.#deliverLater({ type: "subscribed", ...target, requestId });
      this.#waiting.delete(key);
      this.#deliverLater({
        type: "unsubscribed",
        ...target,
        ...(message.requestId !== undefined ? { requestId: message.requestId } : {}),
      });
      this.#changed();
    }
    // Nothing else can be sent over SSE (the client refuses it first); keep-alive pings are not needed.
  }

  close(_code?: number, _reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#swap.cancel();
    this.#source?.close();
    this.#source = null;
    const onclose = this.onclose;
    if (onclose !== null) queueMicrotask(() => onclose({ code: 1000, reason: "client closed" }));
  }

  /** The set wanted differs from the stream's: reopen with it, debounced. */
  #changed(): void {
    if (this.#targets === undefined) return; // not started yet: the first stream takes the set as it is then
    this.#swap.schedule();
  }

  #reopen(): void {
    if (this.#closed || this.#targets === undefined) return;
    if (targetsKey(this.#options.targets()) === targetsKey(this.#targets)) {
      // The stream already delivers what is wanted (`*` covers a tour added,
      // or a change was undone): answer what waits from the acks held.
      const all = this.#acks.get("*");
      for (const [key, ids] of [...this.#waiting]) {
        const ack = this.#acks.get(key) ?? (!key.startsWith("#") && all !== undefined ? { ...all, tourId: key } : undefined);
        if (ack === undefined) continue;
        this.#waiting.delete(key);
        for (const requestId of ids) this.#deliverLater({ ...ack, requestId });
      }
      return;
    }
    this.#source?.close();
    this.#source = null;
    this.#start();
  }

  #start(): void {
    const targets = snapshotTargets(this.#options.targets());
    const resume = this.#options.resume;
    const covered = resume.covered;
    const lastEventId = covered !== undefined && !addsTargets(covered, targets) ? resume.lastEventId : undefined;
    const url = sseUrl(this.#base, targets, { token: this.#token, lastEventId });
    this.url = url;
    this.#targets = targets;
    this.#acks.clear();
    let source: EventSourceLike;
    try {
      source = new this.#options.EventSource(url);
    } catch (e) {
      this.#fail(`could not open the event stream: ${String(e)}`);
      return;
    }
    this.#source = source;
    let open = false;
    source.onopen = () => {
      if (this.#source !== source) return;
      open = true;
      if (!this.#opened) {
        this.#opened = true;
        this.onopen?.({});
      }
    };
    source.onerror = (event: unknown) => {
      if (this.#source !== source) return;
      source.close();
      this.#source = null;
      const status = typeof event === "object" && event !== null && "code" in event ? (event as { code?: unknown }).code : undefined;
      if (!open && this.#opened && (status === 400 || status === 403) && this.#refuseAdded(status)) {
        // The new set was refused for what it added: carry on with the rest.
        this.#start();
        return;
      }
      const detail = typeof status === "number" ? ` (HTTP ${status})` : "";
      this.#fail(open ? "event stream ended" : `event stream refused or unreachable${detail}`);
    };
    for (const type of SSE_EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        if (this.#source !== source) return;
        if (event.lastEventId !== undefined && event.lastEventId !== "") {
          // The id and the targets it covers change together: until this
          // stream's first id (the last of its opening answers), resuming
          // means resuming the previous stream's set from the previous id.
          resume.lastEventId = event.lastEventId;
          resume.covered = targets;
        }
        if (typeof event.data !== "string") return;
        this.#received(type, event.data);
      });
    }
  }

  #received(type: ServerMessageType, data: string): void {
    if (type !== "subscribed") {
      this.onmessage?.({ data });
      return;
    }
    let ack: Record<string, unknown>;
    try {
      ack = JSON.parse(data) as Record<string, unknown>;
    } catch {
      this.onmessage?.({ data }); // the codec reports it
      return;
    }
    const key = keyOf(ack as { tourId?: string; channel?: Channel });
    const { requestId: _ignored, ...plain } = ack;
    this.#acks.set(key, plain);
    const waiting = this.#waiting.get(key) ?? [];
    this.#waiting.delete(key);
    if (waiting.length === 0) this.onmessage?.({ data: JSON.stringify(plain) });
    for (const requestId of waiting) this.onmessage?.({ data: JSON.stringify({ ...plain, requestId }) });
    if (key === "*") {
      // `*` covers every tour: the subscribes to single tours waiting are answered too.
      for (const [tour, ids] of [...this.#waiting]) {
        if (tour.startsWith("#")) continue;
        this.#waiting.delete(tour);
        for (const requestId of ids) this.onmessage?.({ data: JSON.stringify({ ...plain, tourId: tour, requestId }) });
      }
    }
  }

  /**
   * A reopened stream was refused (400: a bad tour id or channel; 403: a
   * channel the token does not allow; the EventSource's status, where it
   * tells it): the subscribes waiting for what the stream added are refused
   * with the matching error code, so the client drops them. Returns whether
   * there were any.
   */
  #refuseAdded(status: 400 | 403): boolean {
    const covered = this.#options.resume.covered;
    const added = [...this.#waiting].filter(([key]) => covered === undefined || !covers(covered, key));
    for (const [key, ids] of added) {
      this.#waiting.delete(key);
      for (const requestId of ids) {
        const error = {
          type: "error",
          code: status === 400 ? "invalid_message" : "forbidden",
          message: `the gateway refused an event stream with ${key.startsWith("#") ? `channel ${key.slice(1)}` : `tour ${key}`} (HTTP ${status})`,
          requestId,
        };
        this.onmessage?.({ data: JSON.stringify(error) });
      }
    }
    return added.length > 0;
  }

  /** A reply made here, delivered like one from the server (after the current call returns). */
  #deliverLater(message: Record<string, unknown>): void {
    const data = JSON.stringify(message);
    queueMicrotask(() => {
      if (!this.#closed) this.onmessage?.({ data });
    });
  }

  #fail(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#swap.cancel();
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason });
  }
}

function covers(targets: SseTargets, key: TargetKey): boolean {
  if (key.startsWith("#")) return targets.channels.has(key.slice(1) as Channel);
  return targets.tours.has(key) || targets.tours.has("*");
}

function snapshotTargets(t: SseTargets): SseTargets {
  return { tours: new Set(t.tours), channels: new Set(t.channels), viewers: new Set(t.viewers) };
}
