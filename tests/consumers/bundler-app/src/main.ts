// A bundled browser app (Vite, `moduleResolution: bundler`) using the client
// over binary frames: the protobuf entry, with the app's own
// @bufbuild/protobuf. The gateway's URL comes from `?gateway=`.
import { TourcastClient, type ServerMessage } from "@tourcast/bindings";
import { protoCodec } from "@tourcast/bindings/proto";
import serverSchema from "@tourcast/bindings/schemas/server_message.schema.json";

const log = document.getElementById("log")!;
const gateway = new URLSearchParams(location.search).get("gateway") ?? "ws://localhost:8080/ws";
const seen: string[] = [];
const show = (line: string) => {
  seen.push(line);
  log.textContent = seen.join("\n");
};

const client = new TourcastClient({ url: gateway, codec: protoCodec });
client.on("tour.availability.updated", (m: Extract<ServerMessage, { type: "tour.availability.updated" }>) => {
  show(`update ${m.data.tourId} ${m.data.availableSeats} seq ${m.seq} over ${client.state.encoding}`);
  document.body.dataset.updated = "yes";
});
client
  .subscribe("tour_paris")
  .then(() => show(`subscribed over ${client.state.encoding}; schema ${serverSchema.title}`))
  .catch((e: unknown) => show(`subscribe failed: ${String(e)}`));
