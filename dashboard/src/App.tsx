import { useEffect, useRef, useState } from "react";
import type { ClientState, LowAlert, TourView } from "@tourcast/bindings";
import { useNotifications, useTourAvailability, useViewers } from "@tourcast/bindings/react";

/** How long a low-availability or notification toast stays up. */
const TOAST_MS = 8_000;

/** Green above 10 seats, orange from 5 to 10, red below 5. */
export function level(seats: number): "green" | "orange" | "red" {
  if (seats > 10) return "green";
  if (seats >= 5) return "orange";
  return "red";
}

declare global {
  interface Window {
    /** Measurements the e2e test reads. */
    __tourcast?: { firstSnapshotMs?: number };
  }
}

export function App({
  tourIds,
  hasToken,
  search,
}: {
  tourIds: readonly string[] | "*";
  /** A token was given: the user's own notifications are shown as toasts. */
  hasToken: boolean;
  /** The page's query string, kept by the link to the admin page. */
  search: string;
}) {
  const { tours, status, alerts, state, error } = useTourAvailability(tourIds);
  const now = useNow(1_000);

  // Time from navigation start to the first rendered snapshot.
  const [firstSnapshotMs, setFirstSnapshotMs] = useState<number>();
  useEffect(() => {
    if (tours.length === 0 || firstSnapshotMs !== undefined) return;
    const ms = Math.round(performance.now());
    performance.mark("tourcast:first-snapshot");
    window.__tourcast = { ...window.__tourcast, firstSnapshotMs: ms };
    setFirstSnapshotMs(ms);
  }, [tours.length, firstSnapshotMs]);

  return (
    <div className="page">
      <header className="top">
        <h1>
          tourcast <span className="subtitle">live tour availability</span>
        </h1>
        <div className="top-right">
          <nav className="nav">
            <a href={`${search}#/support/support_demo`} data-testid="support-link">
              Support chat
            </a>
            <a href={`${search}#/admin`} data-testid="admin-link">
              Admin
            </a>
          </nav>
          <ConnectionIndicator state={state} now={now} />
        </div>
      </header>

      {error !== undefined && (
        <p className="banner" role="alert">
          Subscription failed: {error.message}
        </p>
      )}

      <main>
        {tours.length === 0 ? (
          <p className="empty" data-testid="empty">
            {status === "open" ? "Waiting for the first snapshot…" : "Connecting to the gateway…"}
          </p>
        ) : (
          <section className="grid" aria-label="Tours">
            {tours.map((tour) => (
              <TourCard key={tour.tourId} tour={tour} now={now} />
            ))}
          </section>
        )}
      </main>

      <div className="toasts" aria-live="assertive">
        {hasToken && <NotificationToasts now={now} />}
        <Toasts alerts={alerts} now={now} />
      </div>

      <footer className="foot">
        <span>
          {tours.length} tour{tours.length === 1 ? "" : "s"} · {state.encoding.toUpperCase()}
          {state.epoch !== undefined && <> · epoch {state.epoch}</>}
        </span>
        {firstSnapshotMs !== undefined && (
          <span data-testid="first-snapshot">first snapshot rendered {firstSnapshotMs} ms after page load</span>
        )}
      </footer>
    </div>
  );
}

function ConnectionIndicator({ state, now }: { state: ClientState; now: number }) {
  const { status } = state;
  let label: string;
  switch (status) {
    case "open":
      label = state.transport === "sse" ? "Live · SSE" : "Live";
      break;
    case "idle":
    case "connecting":
      label = "Connecting…";
      break;
    case "reconnecting": {
      const wait = state.nextRetryAt === undefined ? 0 : Math.max(0, Math.ceil((state.nextRetryAt - now) / 1000));
      label = wait > 0 ? `Disconnected · retrying in ${wait} s` : "Disconnected · reconnecting…";
      break;
    }
    case "closed":
      label = "Closed";
      break;
  }
  const connected = status === "open";
  return (
    <div
      className={`indicator ${connected ? "on" : "off"}`}
      data-testid="connection"
      data-status={status}
      data-connected={connected}
      data-transport={state.transport}
      role="status"
      aria-live="polite"
      title={state.lastClose === undefined ? undefined : `last close: ${state.lastClose.code} ${state.lastClose.reason}`}
    >
      <span className="dot" aria-hidden="true" />
      {label}
    </div>
  );
}

function TourCard({ tour, now }: { tour: TourView; now: number }) {
  const lvl = level(tour.availableSeats);
  // Connections looking at this tour on every instance, this page included.
  const viewing = useViewers(tour.tourId);
  const updated = new Date(tour.updatedAt);
  const valid = !Number.isNaN(updated.getTime());
  return (
    <article
      className={`card ${lvl}`}
      data-testid="tour-card"
      data-tour-id={tour.tourId}
      data-level={lvl}
      data-seats={tour.availableSeats}
      data-seq={tour.seq}
    >
      <h2 className="name">{tour.tourName ?? tour.tourId}</h2>
      <p className="seats">
        <span className="count" data-testid="seats">
          {tour.availableSeats}
        </span>{" "}
        seat{tour.availableSeats === 1 ? "" : "s"} left
      </p>
      <p className="viewers" data-testid="viewers" data-count={viewing ?? ""}>
        {viewing === undefined ? "\u00a0" : `${viewing} viewing now`}
      </p>
      <dl className="meta">
        <div>
          <dt>Max group size</dt>
          <dd data-testid="max-group">{tour.maxGroupSize ?? "—"}</dd>
        </div>
        <div>
          <dt>Last update</dt>
          <dd>
            {valid ? (
              <>
                <time dateTime={tour.updatedAt} title={updated.toLocaleString()}>
                  {updated.toLocaleTimeString()}
                </time>
                <span className="ago">{ago(now - updated.getTime())}</span>
              </>
            ) : (
              "—"
            )}
          </dd>
        </div>
      </dl>
    </article>
  );
}

function Toasts({ alerts, now }: { alerts: readonly LowAlert[]; now: number }) {
  const [dismissed, setDismissed] = useState<ReadonlySet<string>>(new Set());
  const visible = alerts.filter((a) => now - a.receivedAt < TOAST_MS && !dismissed.has(a.key)).slice(0, 4);
  return (
    <>
      {visible.map((a) => (
        <div className="toast" role="alert" data-testid="toast" data-tour-id={a.tourId} key={a.key}>
          <strong>Low availability</strong>
          <span>
            {a.tourTitle}: {a.availableSeats} seat{a.availableSeats === 1 ? "" : "s"} left (threshold {a.threshold})
          </span>
          <button
            type="button"
            aria-label="Dismiss"
            onClick={() => setDismissed((prev) => new Set([...prev, a.key]))}
          >
            ×
          </button>
        </div>
      ))}
    </>
  );
}

/** The token's user's own notifications (booking confirmed / cancelled), as toasts. */
function NotificationToasts({ now }: { now: number }) {
  // When each arrived here (their `timestamp` is the publisher's clock).
  const arrived = useRef(new Map<string, number>());
  const { notifications, error } = useNotifications(undefined, {
    max: 10,
    onNotification: (n) => arrived.current.set(n.notificationId, Date.now()),
  });
  const [dismissed, setDismissed] = useState<ReadonlySet<string>>(new Set());
  if (error !== undefined) {
    return (
      <div className="toast muted" role="status" data-testid="notifications-error" data-code={error.code}>
        <span>Notifications unavailable: {error.message}</span>
      </div>
    );
  }
  const visible = notifications
    .filter((n) => now - (arrived.current.get(n.notificationId) ?? 0) < TOAST_MS && !dismissed.has(n.notificationId))
    .slice(0, 3);
  return (
    <>
      {visible.map((n) => (
        <div
          className={`toast notification ${n.kind === "booking.confirmed" ? "confirmed" : "cancelled"}`}
          role="alert"
          data-testid="notification-toast"
          data-kind={n.kind}
          data-booking-id={n.bookingId}
          key={n.notificationId}
        >
          <strong>{n.kind === "booking.confirmed" ? "Booking confirmed" : "Booking cancelled"}</strong>
          <span>{n.message}</span>
          <span className="dim">
            {n.tourName} · {n.seats} seat{n.seats === 1 ? "" : "s"}
          </span>
          <button
            type="button"
            aria-label="Dismiss"
            onClick={() => setDismissed((prev) => new Set([...prev, n.notificationId]))}
          >
            ×
          </button>
        </div>
      ))}
    </>
  );
}

/** The current time, refreshed every `ms`. */
function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  return `${Math.round(m / 60)} h ago`;
}
