import { lazy, StrictMode, Suspense, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { sameOriginUrl, TourcastClient, type Codec } from "@tourcast/bindings";
import { TourcastProvider } from "@tourcast/bindings/react";
import { App } from "./App";
import "./styles.css";

// Query parameters (all optional):
//   ?ws=ws://host:8080/ws   the gateway (default: the one serving this page)
//   ?encoding=proto         protobuf frames instead of JSON (loaded on demand)
//   ?tours=tour_paris,tour_rome   only these tours (default: every tour)
//   ?token=<JWT>            access token, when the gateway requires one (and for
//                           the user's notifications; the admin page needs an admin's)
//   ?transport=auto         websocket, sse or auto (default): auto uses WebSocket and
//                           falls back to Server-Sent Events where upgrades are refused
//                           (some proxies); the chat needs WebSocket
// Pages: #/ (availability, the default), #/admin (live gateway statistics) and
// #/support/<room> (a support chat; the demo's room is support_demo).
const params = new URLSearchParams(window.location.search);

// The admin page and its charting library are a chunk of their own: the
// availability page never downloads them.
const Admin = lazy(() => import("./Admin"));
// So is the chat.
const Support = lazy(() => import("./Support"));

type Page = { name: "admin" } | { name: "availability" } | { name: "support"; room: string };

function readPage(): Page {
  const path = window.location.hash.replace(/^#\/?/, "");
  if (path.startsWith("admin")) return { name: "admin" };
  if (path.startsWith("support")) {
    const room = decodeURIComponent(path.slice("support".length).replace(/^\/+/, "").split("/")[0] ?? "");
    return { name: "support", room: room === "" ? "support_demo" : room };
  }
  return { name: "availability" };
}

function usePage(): Page {
  const read = readPage;
  const [page, setPage] = useState(read);
  useEffect(() => {
    const changed = () => setPage(read());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return page;
}

function Pages({ tourIds, hasToken }: { tourIds: readonly string[] | "*"; hasToken: boolean }) {
  const page = usePage();
  const search = window.location.search;
  if (page.name === "support") {
    return (
      <Suspense fallback={<p className="empty">Loading…</p>}>
        <Support key={page.room} room={page.room} search={search} />
      </Suspense>
    );
  }
  if (page.name === "admin") {
    return (
      <Suspense fallback={<p className="empty">Loading…</p>}>
        <Admin search={search} />
      </Suspense>
    );
  }
  return <App tourIds={tourIds} hasToken={hasToken} search={search} />;
}

async function start(): Promise<void> {
  // The protobuf codec is a separate chunk: JSON pages never download it.
  const token = params.get("token");
  const codec: Codec | undefined =
    params.get("encoding") === "proto" ? (await import("@tourcast/bindings/proto")).protoCodec : undefined;
  const asked = params.get("transport");
  const transport = asked === "websocket" || asked === "sse" ? asked : "auto";
  const client = new TourcastClient({
    url: params.get("ws") ?? sameOriginUrl("/ws"),
    transport,
    ...(codec === undefined ? {} : { codec }),
    ...(token === null || token === "" ? {} : { token }),
  });
  const tours = params.get("tours");
  const tourIds = tours === null || tours === "" || tours === "*" ? "*" : tours.split(",");
  const root = document.getElementById("root");
  if (root === null) throw new Error("#root is missing");
  createRoot(root).render(
    <StrictMode>
      <TourcastProvider client={client}>
        <Pages tourIds={tourIds} hasToken={token !== null && token !== ""} />
      </TourcastProvider>
    </StrictMode>,
  );
}

void start();
