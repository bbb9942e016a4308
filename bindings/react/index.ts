// React bindings: `useTourAvailability(tourIds | "*")` on top of TourcastClient.
//
//   const { tours, status, alerts } = useTourAvailability("*");
//
// The hook uses the client given in its options, else the one from the
// nearest <TourcastProvider>, else a client of its own connected to the page's
// gateway (`ws(s)://<host>/ws`) or `options.url`.

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
  type ReactElement,
  type ReactNode,
} from "react";
import {
  sameOriginUrl,
  TourcastClient,
  type ClientState,
  type ConnectionStatus,
  type LowAlert,
  type TourcastClientOptions,
  type TourView,
} from "../client/index.js";

const ClientContext = createContext<TourcastClient | null>(null);

/** Shares one client with every hook below it. The provider does not close it. */
export function TourcastProvider(props: { client: TourcastClient; children?: ReactNode }): ReactElement {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

/** The client of the nearest <TourcastProvider>, if any. */
export function useTourcastClient(): TourcastClient | null {
  return useContext(ClientContext);
}

export interface UseTourAvailabilityOptions extends Partial<TourcastClientOptions> {
  /** The client to use (else the provider's, else one the hook creates and closes). */
  client?: TourcastClient;
}

export interface TourAvailability {
  /** The requested tours the client holds: in request order, or sorted by name for `"*"`. */
  tours: readonly TourView[];
  /** Connection state: `open` when live. */
  status: ConnectionStatus;
  /** Recent low-availability alerts for the requested tours, newest first. */
  alerts: readonly LowAlert[];
  /** The last subscribe that the server refused or that timed out. */
  error: Error | undefined;
  /** The whole client state (epoch, retry time, last close reason…). */
  state: ClientState;
  /** The client behind the hook (null until the hook's own client exists). */
  client: TourcastClient | null;
}

// Several components may want the same tour from one client: count them, and
// unsubscribe only when the last one goes (a tick later, so that React's
// StrictMode unmount/remount does not churn subscriptions).
const holders = new WeakMap<TourcastClient, Map<string, { count: number; owned: boolean }>>();

function retain(client: TourcastClient, tourId: string, onError: (e: Error) => void): () => void {
  let held = holders.get(client);
  if (held === undefined) {
    held = new Map();
    holders.set(client, held);
  }
  const map = held;
  const entry = map.get(tourId) ?? { count: 0, owned: false };
  if (entry.count === 0 && !entry.owned) {
    // A subscription the application made itself is left to the application.
    entry.owned = !client.subscriptions.has(tourId);
    if (entry.owned) client.subscribe(tourId).catch(onError);
  }
  entry.count += 1;
  map.set(tourId, entry);
  return () => {
    entry.count -= 1;
    setTimeout(() => {
      if (entry.count > 0 || map.get(tourId) !== entry) return;
      map.delete(tourId);
      if (entry.owned && client.state.status !== "closed") client.unsubscribe(tourId).catch(() => undefined);
    }, 0);
  };
}

const IDLE: ClientState = {
  status: "connecting",
  tours: new Map(),
  alerts: [],
  encoding: "json",
  attempt: 0,
};
const noSubscribe = () => () => undefined;

/** Live availability of `tourIds` (or every tour with `"*"`). */
export function useTourAvailability(
  tourIds: readonly string[] | "*",
  options: UseTourAvailabilityOptions = {},
): TourAvailability {
  const provided = useContext(ClientContext);
  const external = options.client ?? provided;
  const [own, setOwn] = useState<TourcastClient | null>(null);

  // A client of the hook's own, created after mount and closed on unmount.
  const { client: _ignored, ...clientOptions } = options;
  const ownKey = external === null ? JSON.stringify({ ...clientOptions, codec: clientOptions.codec?.encoding }) : null;
  useEffect(() => {
    if (ownKey === null) return;
    // The page's gateway only when no URL is given: outside a browser (SSR
    // tests, React Native) there is no `location` to derive it from.
    const created = new TourcastClient({ ...clientOptions, url: clientOptions.url ?? sameOriginUrl() });
    setOwn(created);
    return () => {
      created.close();
      setOwn(null);
    };
    // clientOptions is captured through ownKey.
  }, [ownKey]);

  const client = external ?? own;
  const state = useSyncExternalStore(
    client?.subscribeState ?? noSubscribe,
    client?.getState ?? (() => IDLE),
    client?.getState ?? (() => IDLE),
  );

  const key = tourIds === "*" ? "*" : JSON.stringify(tourIds);
  const [error, setError] = useState<Error | undefined>(undefined);
  useEffect(() => {
    if (client === null) return;
    const ids: readonly string[] = key === "*" ? ["*"] : (JSON.parse(key) as string[]);
    setError(undefined);
    const releases = ids.map((id) => retain(client, id, setError));
    return () => releases.forEach((release) => release());
  }, [client, key]);

  const tours = useMemo(() => {
    if (key === "*") {
      return [...state.tours.values()].sort((a, b) =>
        (a.tourName ?? a.tourId).localeCompare(b.tourName ?? b.tourId),
      );
    }
    const ids = JSON.parse(key) as string[];
    return ids.flatMap((id) => {
      const tour = state.tours.get(id);
      return tour === undefined ? [] : [tour];
    });
  }, [state.tours, key]);

  const alerts = useMemo(() => {
    if (key === "*") return state.alerts;
    const ids = new Set(JSON.parse(key) as string[]);
    return state.alerts.filter((a) => ids.has(a.tourId));
  }, [state.alerts, key]);

  return { tours, status: state.status, alerts, error, state, client };
}

export type { ClientState, ConnectionStatus, LowAlert, TourView };
