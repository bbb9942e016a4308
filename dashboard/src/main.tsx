import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { sameOriginUrl, TourcastClient, type Codec } from "@tourcast/bindings";
import { TourcastProvider } from "@tourcast/bindings/react";
import { App } from "./App";
import "./styles.css";

// Query parameters (all optional):
//   ?ws=ws://host:8080/ws   the gateway (default: the one serving this page)
//   ?encoding=proto         protobuf frames instead of JSON (loaded on demand)
//   ?tours=tour_paris,tour_rome   only these tours (default: every tour)
//   ?token=<JWT>            access token, when the gateway requires one
const params = new URLSearchParams(window.location.search);

async function start(): Promise<void> {
  // The protobuf codec is a separate chunk: JSON pages never download it.
  const token = params.get("token");
  const codec: Codec | undefined =
    params.get("encoding") === "proto" ? (await import("@tourcast/bindings/proto")).protoCodec : undefined;
  const client = new TourcastClient({
    url: params.get("ws") ?? sameOriginUrl("/ws"),
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
        <App tourIds={tourIds} />
      </TourcastProvider>
    </StrictMode>,
  );
}

void start();
