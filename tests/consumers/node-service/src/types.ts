// Type-level checks under every moduleResolution the package promises: each
// `@ts-expect-error` fails the compile if the line below it type-checks,
// which is what happens when the declarations do not resolve and every type
// silently becomes `any`.
import { TourcastClient, jsonCodec, type ClientMessage, type Codec, type ServerMessage, type TourState } from "@tourcast/bindings";

export const ok: ClientMessage = { type: "subscribe", tourId: "tour_paris", since: { epoch: "e1", seq: 41 } };
// @ts-expect-error: a typo in the message type
export const typo: ClientMessage = { type: "subscibe", tourId: "tour_paris" };
// @ts-expect-error: a field the message does not have
export const extra: ClientMessage = { type: "ping", tourId: "tour_paris" };
// @ts-expect-error: seq is a number
export const seq: TourState = { tourId: "t", availableSeats: 1, seq: "1", updatedAt: "" };

export function seats(m: ServerMessage): number {
  if (m.type === "tour.availability.updated") return m.data.availableSeats;
  // @ts-expect-error: `data` exists on the updated/low variants only
  return m.data.availableSeats;
}

export function handlers(client: TourcastClient, codec: Codec = jsonCodec): string {
  // @ts-expect-error: no such message type
  client.on("tour.availability.update", () => undefined);
  client.on("tour.availability.low", (m) => console.log(m.data.tourTitle, m.data.threshold));
  // @ts-expect-error: the low alert has tourTitle, not tourName
  client.on("tour.availability.low", (m) => console.log(m.data.tourName));
  return codec.encoding;
}
