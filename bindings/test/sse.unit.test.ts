// The SSE transport without a gateway: the `/sse` URL, the debounce, and the
// client over a scripted EventSource (acks given their requestId, a
// subscription change reopening the stream, resuming with lastEventId only
// when nothing new is asked for, the typed error for what needs a
// WebSocket), and `auto` falling back from a WebSocket that is always refused.
// The same against the real gateway is in sse.test.ts.

import { afterEach, describe, expect, it } from "vitest";
import {
  sseUrl,
  TourcastClient,
  TourcastError,
  TransportError,
  type EventSourceLike,
  type SseMessageEvent,
  type WebSocketLike,
} from "../client/index.js";
import { addsTargets, Debouncer, type SseTargets } from "../client/sse.js";
import { waitFor } from "./helpers.js";

const targets = (tours: string[], channels: Array<"notifications" | "stats"> = [], viewers: string[] = []): SseTargets => ({
  tours: new Set(tours),
  channels: new Set(channels),
  viewers: new Set(viewers),
});

describe("sseUrl", () => {
  it("maps ws to http and wss to https, /ws to /sse", () => {
    expect(sseUrl("ws://127.0.0.1:8080/ws", targets([]))).toBe("http://127.0.0.1:8080/sse?tours=");
    expect(sseUrl("wss://example.com/ws", targets([]))).toBe("https://example.com/sse?tours=");
    expect(sseUrl("wss://example.com/gateway/ws", targets([]))).toBe("https://example.com/gateway/sse?tours=");
    expect(sseUrl("ws://h/other?x=1#f", targets(["*"]))).toBe("http://h/sse?tours=*");
  });

  it("names the tours (sorted), channels, viewers, token and lastEventId", () => {
    expect(
      sseUrl("ws://h:1/ws", targets(["tour_rome", "tour_paris"], ["stats", "notifications"], ["tour_rome"]), {
        token: "a.b.c",
        lastEventId: "42",
      }),
    ).toBe("http://h:1/sse?tours=tour_paris,tour_rome&channels=notifications,stats&viewers=1&token=a.b.c&lastEventId=42");
  });

  it("sends tours=* alone, without viewers (refused with *)", () => {
    expect(sseUrl("ws://h/ws", targets(["*", "tour_paris"], [], ["tour_paris"]))).toBe("http://h/sse?tours=*");
  });

  it("leaves out viewers for tours not subscribed, and empty parameters", () => {
    expect(sseUrl("ws://h/ws", targets(["tour_paris"], [], ["tour_rome"]), { token: "", lastEventId: "" })).toBe(
      "http://h/sse?tours=tour_paris",
    );
  });

  it("escapes what needs escaping", () => {
    expect(sseUrl("ws://h/ws", targets(["a&b"]), { token: "x y" })).toBe("http://h/sse?tours=a%26b&token=x%20y");
  });
});

describe("addsTargets (resume only when the new stream asks for nothing more)", () => {
  it("a new tour, channel or viewers count adds; removing does not", () => {
    const base = targets(["tour_paris"], ["notifications"]);
    expect(addsTargets(base, targets(["tour_paris", "tour_rome"], ["notifications"]))).toBe(true);
    expect(addsTargets(base, targets(["tour_paris"], ["notifications", "stats"]))).toBe(true);
    expect(addsTargets(base, targets(["tour_paris"], ["notifications"], ["tour_paris"]))).toBe(true);
    expect(addsTargets(base, targets(["tour_paris"]))).toBe(false);
    expect(addsTargets(base, base)).toBe(false);
  });
  it("* covers every tour; the empty set covers nothing and adds nothing", () => {
    expect(addsTargets(targets(["*"]), targets(["tour_paris"]))).toBe(false);
    expect(addsTargets(targets([]), targets(["tour_paris"]))).toBe(true);
    expect(addsTargets(targets(["tour_paris"]), targets([]))).toBe(false);
    expect(addsTargets(targets(["*"]), targets([]))).toBe(false);
    expect(addsTargets(targets(["tour_paris"]), targets(["*"]))).toBe(true);
  });
});

describe("Debouncer", () => {
  it("runs once, delayMs after the last schedule (injected timers)", () => {
    let now = 0;
    const timers: Array<{ at: number; fn: () => void; id: number }> = [];
    let nextId = 0;
    const fake = {
      setTimeout: ((fn: () => void, ms: number) => {
        const id = ++nextId;
        timers.push({ at: now + ms, fn, id });
        return id;
      }) as unknown as typeof setTimeout,
      clearTimeout: ((id: number | undefined) => {
        const i = timers.findIndex((t) => t.id === id);
        if (i >= 0) timers.splice(i, 1);
      }) as unknown as typeof clearTimeout,
    };
    const advance = (ms: number) => {
      now += ms;
      for (const t of [...timers].filter((t) => t.at <= now)) {
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
    };
    let runs = 0;
    const d = new Debouncer(50, () => (runs += 1), fake);
    d.schedule();
    advance(30);
    d.schedule();
    advance(30);
    d.schedule();
    expect(d.pending).toBe(true);
    advance(49);
    expect(runs).toBe(0);
    advance(1);
    expect(runs).toBe(1);
    expect(d.pending).toBe(false);
    d.schedule();
    d.cancel();
    advance(100);
    expect(runs).toBe(1);
  });
});

// --- a scripted EventSource --------------------------------------------------------

class FakeEventSource implements EventSourceLike {
  static all: FakeEventSource[] = [];
  /** Whether new streams open (true) or are refused. */
  static accept = true;
  /** The status a refused stream reports (the npm package's `code`). */
  static refusedStatus = 503;
  readyState = 0;
  onopen: ((e: unknown) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  readonly listeners = new Map<string, Array<(e: SseMessageEvent) => void>>();
  lastEventId = "";
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
    const { accept, refusedStatus } = FakeEventSource;
    setTimeout(() => {
      if (this.closed) return;
      if (accept) {
        this.readyState = 1;
        this.onopen?.({});
      } else {
        this.readyState = 2;
        this.onerror?.({ code: refusedStatus });
      }
    }, 1);
  }
  addEventListener(type: string, listener: (e: SseMessageEvent) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close(): void {
    this.closed = true;
    this.readyState = 2;
  }
  /** The server sends one event. */
  emit(message: { type: string; [k: string]: unknown }, id?: number): void {
    if (id !== undefined) this.lastEventId = String(id);
    for (const l of this.listeners.get(message.type) ?? []) l({ data: JSON.stringify(message), lastEventId: this.lastEventId });
  }
  /** The stream ends (the server went away). */
  end(): void {
    this.readyState = 0;
    this.onerror?.({});
  }
  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }
  static latest(): FakeEventSource {
    const es = FakeEventSource.all.at(-1);
    if (es === undefined) throw new Error("no EventSource yet");
    return es;
  }
}

/** A WebSocket whose handshakes are refused while `refuse` is set, and that opens (and stays silent) otherwise. */
class ScriptedWebSocket implements WebSocketLike {
  static attempts = 0;
  static opened = 0;
  static refuse = true;
  binaryType = "arraybuffer";
  readonly protocol = "tourcast.v1.json";
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  constructor(readonly url: string) {
    ScriptedWebSocket.attempts += 1;
    const refuse = ScriptedWebSocket.refuse;
    setTimeout(() => {
      if (refuse) {
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
      } else {
        ScriptedWebSocket.opened += 1;
        this.onopen?.({});
      }
    }, 1);
  }
  send(): void {}
  close(): void {}
}

const clients: TourcastClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  FakeEventSource.all = [];
  FakeEventSource.accept = true;
  FakeEventSource.refusedStatus = 503;
  ScriptedWebSocket.attempts = 0;
  ScriptedWebSocket.opened = 0;
  ScriptedWebSocket.refuse = true;
});

function sseClient(options: Partial<ConstructorParameters<typeof TourcastClient>[0]> = {}): TourcastClient {
  const client = new TourcastClient({
    url: "ws://127.0.0.1:1/ws",
    transport: "sse",
    EventSource: FakeEventSource,
    reconnect: { initialDelayMs: 5, jitter: 0 },
    sseDebounceMs: 20,
    ...options,
  });
  clients.push(client);
  return client;
}

const snapshot = (tourId: string, seq: number) => ({
  type: "snapshot",
  epoch: "e1",
  timestamp: "t",
  tours: [{ tourId, title: tourId, availableSeats: 10, capacity: 20, seq }],
});

/** A client whose stream follows tour_paris and has delivered its snapshot, with id 7. */
async function onParisAtSeven(): Promise<TourcastClient> {
  const client = sseClient({ sseDebounceMs: 5 });
  client.subscribe("tour_paris").catch(() => undefined);
  await waitFor("client.state.status === 'open'", () => client.state.status === "open");
  const first = FakeEventSource.latest();
  first.emit({ type: "connection", clientId: "c1", epoch: "e1", encoding: "json" });
  first.emit({ type: "subscribed", tourId: "tour_paris" });
  first.emit(snapshot("tour_paris", 7), 7);
  return client;
}

describe("the client over SSE (scripted EventSource)", () => {
  it("opens one stream with the subscriptions made at once, and settles them with the stream's acks", async () => {
    const client = sseClient({ token: "tok" });
    const paris = client.subscribe("tour_paris");
    const rome = client.subscribe("tour_rome");
    await waitFor("client.state.status === 'open'", () => client.state.status === "open");
    expect(FakeEventSource.all).toHaveLength(1);
    const es = FakeEventSource.latest();
    expect(es.query.get("tours")).toBe("tour_paris,tour_rome");
    expect(es.query.get("token")).toBe("tok");
    expect(es.query.has("lastEventId")).toBe(false);
    expect(client.state.transport).toBe("sse");
    es.emit({ type: "connection", clientId: "c1", epoch: "e1", encoding: "json" });
    es.emit({ type: "subscribed", tourId: "tour_paris" });
    es.emit(snapshot("tour_paris", 3), 3);
    es.emit({ type: "subscribed", tourId: "tour_rome" });
    es.emit(snapshot("tour_rome", 5), 5);
    expect((await paris).tourId).toBe("tour_paris");
    expect((await rome).tourId).toBe("tour_rome");
    expect([...client.state.tours.keys()].sort()).toEqual(["tour_paris", "tour_rome"]);
    es.emit({ type: "tour.availability.updated", seq: 6, timestamp: "t", data: { tourId: "tour_paris", availableSeats: 9 } }, 6);
    await waitFor("client.state.tours.get('tour_paris')?.availableSeats === 9", () => client.state.tours.get("tour_paris")?.availableSeats === 9);
  });

  it("reopens the stream with the new set after a change (debounced), resuming only when nothing is added", async () => {
    const client = sseClient();
    client.subscribe("tour_paris").catch(() => undefined);
    client.subscribe("tour_rome").catch(() => undefined);
    await waitFor("client.state.status === 'open'", () => client.state.status === "open");
    const first = FakeEventSource.latest();
    first.emit({ type: "connection", clientId: "c1", epoch: "e1", encoding: "json" });
    first.emit({ type: "subscribed", tourId: "tour_paris" });
    first.emit({ type: "subscribed", tourId: "tour_rome" });
    first.emit(snapshot("tour_paris", 7), 7);

    // Two changes in a row: one new stream. A tour is added: no lastEventId (it needs a snapshot).
    const lisbon = client.subscribe("tour_lisbon");
    const madrid = client.subscribe("tour_madrid");
    void lisbon.catch(() => undefined);
    void madrid.catch(() => undefined);
    await waitFor("FakeEventSource.all.length === 2", () => FakeEventSource.all.length === 2);
    await new Promise((r) => setTimeout(r, 60));
    expect(FakeEventSource.all).toHaveLength(2);
    expect(first.closed).toBe(true);
    const second = FakeEventSource.latest();
    expect(second.query.get("tours")).toBe("tour_lisbon,tour_madrid,tour_paris,tour_rome");
    expect(second.query.has("lastEventId")).toBe(false);
    await waitFor("second.readyState === 1", () => second.readyState === 1);
    second.emit({ type: "connection", clientId: "c2", epoch: "e1", encoding: "json" });
    for (const t of ["tour_lisbon", "tour_madrid", "tour_paris", "tour_rome"]) second.emit({ type: "subscribed", tourId: t });
    expect((await lisbon).tourId).toBe("tour_lisbon");
    expect((await madrid).tourId).toBe("tour_madrid");
    second.emit(snapshot("tour_rome", 9), 9);

    // A tour removed: answered at once, the new stream resumes from the last id seen.
    const gone = await client.unsubscribe("tour_madrid");
    expect(gone).toMatchObject({ type: "unsubscribed", tourId: "tour_madrid" });
    await waitFor("FakeEventSource.all.length === 3", () => FakeEventSource.all.length === 3);
    const third = FakeEventSource.latest();
    expect(third.query.get("tours")).toBe("tour_lisbon,tour_paris,tour_rome");
    expect(third.query.get("lastEventId")).toBe("9");
    expect(client.state.status).toBe("open");
  });

  it("does not resume a new tour from an id that predates its snapshot", async () => {
    const client = await onParisAtSeven();

    // Rome is added; its stream opens and acknowledges, but the opening
    // answers (rome's snapshot, the id) have not arrived yet.
    client.subscribe("tour_rome").catch(() => undefined);
    await waitFor("FakeEventSource.all.length === 2", () => FakeEventSource.all.length === 2);
    const second = FakeEventSource.latest();
    await waitFor("second.readyState === 1", () => second.readyState === 1);
    second.emit({ type: "connection", clientId: "c2", epoch: "e1", encoding: "json" });
    second.emit({ type: "subscribed", tourId: "tour_paris" });

    // Paris is dropped: rome alone was never covered by id 7.
    await client.unsubscribe("tour_paris");
    await waitFor("FakeEventSource.all.length === 3", () => FakeEventSource.all.length === 3);
    const third = FakeEventSource.latest();
    expect(third.query.get("tours")).toBe("tour_rome");
    expect(third.query.has("lastEventId")).toBe(false);
  });

  it("dropping every subscription reopens with tours= (nothing), not every tour", async () => {
    const client = await onParisAtSeven();

    await client.unsubscribe("tour_paris");
    await waitFor("FakeEventSource.all.length === 2", () => FakeEventSource.all.length === 2);
    const second = FakeEventSource.latest();
    expect(second.query.get("tours")).toBe("");
    expect(second.query.has("channels")).toBe(false);
    // It covers less than the last stream did: it resumes.
    expect(second.query.get("lastEventId")).toBe("7");
    // A tour added to nothing needs its snapshot.
    client.subscribe("tour_rome").catch(() => undefined);
    await waitFor("FakeEventSource.all.length === 3", () => FakeEventSource.all.length === 3);
    expect(FakeEventSource.latest().query.get("tours")).toBe("tour_rome");
    expect(FakeEventSource.latest().query.has("lastEventId")).toBe(false);
  });

  it("a subscribe to a target the stream already acknowledged is answered at once", async () => {
    const client = sseClient();
    client.subscribe("tour_paris").catch(() => undefined);
    await waitFor("client.state.status === 'open'", () => client.state.status === "open");
    const es = FakeEventSource.latest();
    es.emit({ type: "subscribed", tourId: "tour_paris" });
    const again = await client.subscribe("tour_paris");
    expect(again.tourId).toBe("tour_paris");
    await new Promise((r) => setTimeout(r, 50));
    expect(FakeEventSource.all).toHaveLength(1);
  });

  it("reconnects itself after the stream ends, resuming with lastEventId", async () => {
    const client = sseClient();
    client.subscribe("tour_paris").catch(() => undefined);
    await waitFor("client.state.status === 'open'", () => client.state.status === "open");
    const es = FakeEventSource.latest();
    es.emit({ type: "subscribed", tourId: "tour_paris" });
    es.emit(snapshot("tour_paris", 12), 12);
    es.end();
    expect(es.closed).toBe(true); // not the EventSource's own reconnect
    await waitFor("FakeEventSource.all.length === 2 && client.state.status === 'open'", () => FakeEventSource.all.length === 2 && client.state.status === "open");
    expect(FakeEventSource.latest().query.get("lastEventId")).toBe("12");
    expect(client.counters.connections).toBe(2);
  });

  it("rooms, ping, refresh and refreshStats reject with a TransportError", async () => {
    const client = sseClient();
    await waitFor("client.state.status === 'open'", () => client.state.status === "open");
    const room = client.room("support_1");
    for (const attempt of [room.join(), room.publish("hi"), room.leave(), client.ping(), client.refresh("t"), client.refreshStats()]) {
      const error = await attempt.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TransportError);
      expect(error).toBeInstanceOf(TourcastError);
      expect((error as TransportError).code).toBe("transport_unsupported");
      expect((error as Error).message).toMatch(/needs a WebSocket/);
    }
  });
});

describe("transport: auto (scripted)", () => {
  it("falls back to SSE after two refused WebSocket handshakes", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    client.subscribe("tour_paris").catch(() => undefined);
    await waitFor("open", () => client.state.status === "open");
    expect(client.state.transport).toBe("sse");
    expect(FakeEventSource.latest().query.get("tours")).toBe("tour_paris");
    // Once open, one probe handshake checks that WebSocket is really refused; it is: SSE stays.
    await waitFor("the probe", () => ScriptedWebSocket.attempts === 3);
    await new Promise((r) => setTimeout(r, 30));
    expect(client.state.transport).toBe("sse");
    expect(client.state.status).toBe("open");
    expect(FakeEventSource.all).toHaveLength(1);
  });

  it("moves back to WebSocket at once when the probe on the first stream opens (it was an outage)", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    await waitFor("two refusals", () => ScriptedWebSocket.attempts === 2);
    ScriptedWebSocket.refuse = false; // the server is back
    await waitFor("websocket", () => client.state.status === "open" && client.state.transport === "websocket");
    expect(FakeEventSource.all.every((es) => es.closed)).toBe(true);
  });

  it("alternates while nothing gets through, and keeps the stream that opens", async () => {
    FakeEventSource.accept = false;
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, maxDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    await waitFor("two streams refused", () => FakeEventSource.all.length === 2);
    // WS, WS, SSE, WS, SSE: one WebSocket attempt between streams.
    expect(ScriptedWebSocket.attempts).toBe(3);
    FakeEventSource.accept = true;
    await waitFor("open over SSE", () => client.state.status === "open" && client.state.transport === "sse");
  });

  it("tries WebSocket again after retryWebSocketMs and moves back when it opens", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 30 },
    });
    clients.push(client);
    await waitFor("client.state.status === 'open' && client.state.transport === 'sse'", () => client.state.status === "open" && client.state.transport === "sse");
    const stream = FakeEventSource.latest();
    ScriptedWebSocket.refuse = false;
    // The probe opens; the client moves to WebSocket and ends the stream.
    await waitFor("client.state.status === 'open' && client.state.transport === 'websocket'", () => client.state.status === "open" && client.state.transport === "websocket");
    expect(ScriptedWebSocket.opened).toBe(2); // the probe, then the connection
    expect(stream.closed).toBe(true);
    expect(client.counters.connections).toBe(2);
  });

  it("with transport: websocket (the default), never uses SSE", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
    });
    clients.push(client);
    await waitFor("ScriptedWebSocket.attempts >= 4", () => ScriptedWebSocket.attempts >= 4);
    expect(FakeEventSource.all).toHaveLength(0);
    expect(client.state.transport).toBe("websocket");
  });
});


describe("the client over SSE with tours=*", () => {
  it("answers a subscribe to a single tour from the stream's * without reopening", async () => {
    const client = sseClient();
    const all = client.subscribe("*");
    await waitFor("open", () => client.state.status === "open");
    const es = FakeEventSource.latest();
    expect(es.query.get("tours")).toBe("*");
    es.emit({ type: "subscribed", tourId: "*" });
    await all;
    // e.g. a viewers count for one card (it cannot come with `*`): answered, no new stream.
    const one = await client.subscribe("tour_paris", { viewers: true });
    expect(one).toMatchObject({ type: "subscribed", tourId: "tour_paris" });
    await new Promise((r) => setTimeout(r, 60));
    expect(FakeEventSource.all).toHaveLength(1);
  });
});

describe("a reopened stream refused for what it added", () => {
  it("rejects the new subscribe with the matching code and carries on with the rest", async () => {
    const client = sseClient();
    client.subscribe("tour_paris").catch(() => undefined);
    await waitFor("open", () => client.state.status === "open");
    FakeEventSource.latest().emit({ type: "subscribed", tourId: "tour_paris" });
    FakeEventSource.accept = false;
    FakeEventSource.refusedStatus = 403;
    const refused = client.subscribeChannel("notifications").then(
      () => undefined,
      (e: unknown) => e,
    );
    await waitFor("the refused stream", () => FakeEventSource.all.length === 2);
    FakeEventSource.accept = true;
    const error = await refused;
    expect(error).toBeInstanceOf(TourcastError);
    expect((error as TourcastError).code).toBe("forbidden");
    expect(client.channels.has("notifications")).toBe(false);
    await waitFor("a third stream", () => FakeEventSource.all.length === 3);
    expect(FakeEventSource.latest().query.get("tours")).toBe("tour_paris");
    expect(FakeEventSource.latest().query.has("channels")).toBe(false);
    expect(client.state.status).toBe("open");
  });
});

describe("rooms when auto falls back to SSE", () => {
  it("a join waiting for the connection keeps waiting (for WebSocket), and the room's error says why", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    const room = client.room("support_1");
    const errors: TourcastError[] = [];
    room.on("error", (e) => errors.push(e));
    let settled = false;
    room.join().then(
      () => (settled = true),
      () => (settled = true),
    );
    const queued = room.publish("written while the stream is up");
    queued.catch(() => undefined);
    await waitFor("open over SSE", () => client.state.status === "open" && client.state.transport === "sse");
    await waitFor("the room's error", () => room.state.error !== undefined);
    expect(room.state.error).toBeInstanceOf(TransportError);
    expect(errors).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(false);
    expect(room.state.queued).toBe(1);
    // Asked now, over SSE, it is refused at once.
    await expect(client.room("support_2").join()).rejects.toBeInstanceOf(TransportError);
  });
});

describe("auto after a stream ends", () => {
  it("tries one WebSocket handshake before the next stream, and resumes the stream when it is refused", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    client.subscribe("tour_paris").catch(() => undefined);
    await waitFor("open over SSE", () => client.state.status === "open" && client.state.transport === "sse");
    await waitFor("the probe", () => ScriptedWebSocket.attempts === 3);
    const first = FakeEventSource.latest();
    first.emit({ type: "subscribed", tourId: "tour_paris" });
    first.emit(snapshot("tour_paris", 4), 4);
    first.end();
    await waitFor("a second stream", () => FakeEventSource.all.length === 2 && client.state.status === "open");
    // One WebSocket attempt in between (refused), then the stream, resuming.
    expect(ScriptedWebSocket.attempts).toBeGreaterThanOrEqual(4);
    expect(FakeEventSource.latest().query.get("lastEventId")).toBe("4");
    expect(client.state.transport).toBe("sse");
  });

  it("goes back to WebSocket on the next reconnect when upgrades pass again", async () => {
    const client = new TourcastClient({
      url: "ws://127.0.0.1:1/ws",
      transport: "auto",
      WebSocket: ScriptedWebSocket,
      EventSource: FakeEventSource,
      reconnect: { initialDelayMs: 5, jitter: 0 },
      fallback: { afterFailures: 2, retryWebSocketMs: 60_000 },
    });
    clients.push(client);
    await waitFor("open over SSE", () => client.state.status === "open" && client.state.transport === "sse");
    await waitFor("the probe", () => ScriptedWebSocket.attempts === 3);
    ScriptedWebSocket.refuse = false;
    FakeEventSource.latest().end();
    await waitFor("websocket", () => client.state.status === "open" && client.state.transport === "websocket");
    expect(FakeEventSource.all).toHaveLength(1);
  });
});
