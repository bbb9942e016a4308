// A Node back-office service, as a team that never saw tourcast's sources
// writes it: ESM, `moduleResolution: nodenext`, `skipLibCheck: true` (the
// `tsc --init` defaults), the `ws` package as the WebSocket (Node 20).
// It checks its own outgoing message against the schema the package ships,
// subscribes to every tour and exits after the first live update.
import { TourcastClient, type ClientMessage, type ServerMessage } from "@tourcast/bindings";
import clientSchema from "@tourcast/bindings/schemas/client_message.schema.json" with { type: "json" };
import { Ajv } from "ajv";
import WebSocket from "ws";

const url = process.env.TOURCAST_URL;
if (url === undefined) throw new Error("TOURCAST_URL is not set");

const validate = new Ajv().compile<ClientMessage>(clientSchema);
const subscribe: ClientMessage = { type: "subscribe", tourId: "*" };
if (!validate(subscribe)) throw new Error(`the shipped schema refuses ${JSON.stringify(subscribe)}`);
if (validate({ type: "subscribe", tourId: "" })) throw new Error("the shipped schema accepts an empty tourId");

const client = new TourcastClient({ url, WebSocket });
const update = new Promise<Extract<ServerMessage, { type: "tour.availability.updated" }>>((resolve) =>
  client.on("tour.availability.updated", resolve),
);
await client.subscribe("*");
const timeout = setTimeout(() => {
  console.error("no live update within 15 s");
  process.exit(1);
}, 15_000);
const m = await update;
clearTimeout(timeout);
console.log(`node service: ${m.data.tourId} has ${m.data.availableSeats} seats (seq ${m.seq})`);
client.close();

// The protobuf entry needs the optional peer @bufbuild/protobuf, which this
// service did not install: importing it must fail loudly, naming it.
try {
  await import("@tourcast/bindings/proto");
  throw new Error("@tourcast/bindings/proto loaded without @bufbuild/protobuf installed");
} catch (e) {
  const message = String(e);
  if (!message.includes("@bufbuild/protobuf")) throw e;
  console.log(`node service: without the peer, @tourcast/bindings/proto fails with: ${message.split("\n")[0]}`);
}
