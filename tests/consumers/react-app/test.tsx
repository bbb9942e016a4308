// A React app's test, run against the real gateway (TOURCAST_URL): the hook
// renders on the server (renderToString), then the same tree hydrates in
// jsdom, where the hook opens its own connection and renders a live update.
import assert from "node:assert/strict";
import { StrictMode, version as reactVersion } from "react";
import { renderToString } from "react-dom/server";
import { createRoot, hydrateRoot } from "react-dom/client";
import { JSDOM } from "jsdom";
import { TourcastClient } from "@tourcast/bindings";
import { TourcastProvider } from "@tourcast/bindings/react";
import { Chat, Tours } from "./app.js";

const url = process.env.TOURCAST_URL;
if (url === undefined) throw new Error("TOURCAST_URL is not set");
const expectedMajor = process.env.EXPECT_REACT_MAJOR;
assert.equal(reactVersion.split(".")[0], expectedMajor, `the app's React is ${reactVersion}`);

// 1. Server-side rendering: effects do not run, so no connection is opened;
//    the markup is the idle state.
const markup = renderToString(<Tours url={url} />);
assert.equal(markup, '<ul title="connecting"></ul>');
console.log(`react ${reactVersion}: server-rendered ${markup}`);

// 2. The browser: jsdom, with the server's markup.
const dom = new JSDOM(`<!doctype html><div id="ssr">${markup}</div><div id="shared"></div><div id="chat"></div>`, { url: "http://localhost/" });
const g = globalThis as Record<string, unknown>;
for (const key of ["window", "document", "navigator", "WebSocket", "HTMLElement", "Node"]) {
  Object.defineProperty(g, key, { value: dom.window[key as keyof typeof dom.window], configurable: true });
}
const byId = (id: string): HTMLElement => {
  const element = dom.window.document.getElementById(id);
  assert.ok(element, id);
  return element;
};

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${dom.window.document.body.innerHTML}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Waits for the snapshot, then for a live update (the demo feed books seats
// every 200 ms) that re-renders one of the tours with a newer seq.
async function liveUpdate(container: HTMLElement): Promise<string> {
  const seqs = () =>
    new Map(
      [...container.querySelectorAll("li[data-tour]")].map((li) => [li.getAttribute("data-tour"), Number(li.getAttribute("data-seq"))]),
    );
  const first = await until("the snapshot", () => (seqs().size >= 3 ? seqs() : undefined));
  assert.equal(container.querySelector("ul")?.getAttribute("title"), "open");
  return until("a live update", () => {
    for (const [tour, seq] of seqs()) if (seq > (first.get(tour) ?? Infinity)) return `${tour} seq ${first.get(tour)} → ${seq}`;
    return undefined;
  });
}

// 2a. Hydrating the server's markup: the hook opens a connection of its own.
const root = hydrateRoot(byId("ssr"), <Tours url={url} />);
console.log(`react ${reactVersion}: hydrated in jsdom, the hook's own client got ${await liveUpdate(byId("ssr"))}`);

// 2b. One shared client through <TourcastProvider> (the TS2786 case on React 18).
const client = new TourcastClient({ url });
const shared = createRoot(byId("shared"));
shared.render(
  <TourcastProvider client={client}>
    <Tours />
  </TourcastProvider>,
);
console.log(`react ${reactVersion}: through <TourcastProvider>, ${await liveUpdate(byId("shared"))}`);
shared.unmount();

// 2c. useRoom and useViewers under StrictMode (effects run twice): one
//     membership, a message from another client rendered, the viewer count;
//     unmounting leaves the room. The demo gateway runs with rooms open.
const room = `consumer_${reactVersion.replace(/\W/g, "_")}_${Date.now()}`;
const churn: string[] = [];
client.on("joined", (m) => m.room === room && churn.push("joined"));
client.on("left", (m) => m.room === room && churn.push("left"));
const chatRoot = createRoot(byId("chat"));
chatRoot.render(
  <StrictMode>
    <TourcastProvider client={client}>
      <Chat room={room} tourId="tour_rome" />
    </TourcastProvider>
  </StrictMode>,
);
const section = () => byId("chat").querySelector("section");
await until("joined", () => (section()?.getAttribute("data-joined") === "true" ? true : undefined));
assert.equal(section()?.getAttribute("data-count"), "1");
const other = new TourcastClient({ url });
const otherRoom = other.room(room);
await otherRoom.join();
await until("the other member", () => (section()?.getAttribute("data-count") === "2" ? true : undefined));
const { seq } = await otherRoom.publish(`hello from a React ${reactVersion} test`);
const shown = await until("the message", () => byId("chat").querySelector(`p[data-seq="${seq}"]`)?.textContent ?? undefined);
assert.equal(shown, `hello from a React ${reactVersion} test`);
await until("a viewer count", () => (section()?.getAttribute("data-viewing") ?? "") !== "" ? true : undefined);
// StrictMode mounted the effects twice: still one join, no leave.
assert.deepEqual(churn, ["joined"]);
chatRoot.unmount();
await until("the hook left the room", () => (otherRoom.memberCount === 1 ? true : undefined));
console.log(`react ${reactVersion}: useRoom joined once under StrictMode, rendered seq ${seq}, left on unmount; useViewers counted`);
other.close();
client.close();
root.unmount();
// The hook closes its own client on unmount: nothing keeps the process alive.
setTimeout(() => {
  console.error("the hook's client kept the process alive after unmount");
  process.exit(1);
}, 5_000).unref();
