// The component a React team writes with the hook, as in bindings/README.md.
import { useTourAvailability } from "@tourcast/bindings/react";
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
