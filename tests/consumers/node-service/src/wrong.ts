// Deliberately wrong usage, without `@ts-expect-error`: compiling this file
// must fail (tests/consumers/run.sh checks the errors it names).
import { TourcastClient, type ClientMessage } from "@tourcast/bindings";

export const typo: ClientMessage = { type: "subscibe", tourId: "tour_paris" }; // WRONG-1
const client = new TourcastClient({ url: "ws://localhost:8080/ws" });
client.on("tour.availability.updated", (m) => console.log(m.data.availableSeat)); // WRONG-2
client.subscribe(42); // WRONG-3
