// The component a React team writes with the hook, as in bindings/README.md.
import { useRoom, useTourAvailability, useViewers } from "@tourcast/bindings/react";
import type { TourView } from "@tourcast/bindings";

export function Tours({ url }: { url?: string }) {
  const { tours, status, alerts } = useTourAvailability("*", url === undefined ? {} : { url });
  return (
    <ul title={status}>
      {tours.map((t: TourView) => (
        <li key={t.tourId} data-tour={t.tourId} data-seq={t.seq}>
          {t.tourName}: {t.availableSeats} / {t.maxGroupSize}
        </li>
      ))}
      {alerts.map((a) => (
        <li key={a.key}>Low: {a.tourTitle}</li>
      ))}
    </ul>
  );
}

// A support chat and a viewer count, as in bindings/README.md ("Rooms and viewers").
export function Chat({ room, tourId }: { room: string; tourId: string }) {
  const { messages, members, memberCount, joined } = useRoom(room);
  const viewing = useViewers(tourId);
  return (
    <section data-joined={joined} data-members={members.map((m) => m.userId).join(",")} data-count={memberCount} data-viewing={viewing ?? ""}>
      {messages.map((m) => (
        <p key={m.seq} data-seq={m.seq} data-from={m.from.userId}>
          {m.text}
        </p>
      ))}
    </section>
  );
}
