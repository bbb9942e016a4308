// React bindings: `useTourAvailability(tourIds | "*")`, `useNotifications()`,
// `useStats()`, `useRoom(name)` and `useViewers(tourId)` on top of
// TourcastClient.
//
//   const { tours, status, alerts } = useTourAvailability("*");
//   const { latest, notifications } = useNotifications();     // the token's user's own
//   const { stats, history } = useStats();                     // admins
//   const { messages, members, memberCount, publish } = useRoom("support_42");
//   const viewing = useViewers("tour_paris");                  // number | undefined
//
// The hook uses the client given in its options, else the one from the
// nearest <TourcastProvider>, else a client of its own connected to the page's
// gateway (`ws(s)://<host>/ws`) or `options.url`.

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactElement,
  type ReactNode,
} from "react";
import {
  sameOriginUrl,
  TourcastClient,
  TourcastError,
  type ClientState,
  type ConnectionStatus,
  type LowAlert,
  type NotificationKind,
  type NotificationOf,
  type PublishResult,
  type Room,
  type RoomData,
  type RoomMember,
  type RoomMessageOf,
  type RoomState,
  type RoomStatus,
  type StatsMessage,
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

// --- channels ------------------------------------------------------------------

/** `client` itself when given, else the nearest provider's. */
function useChannelClient(client: TourcastClient | null | undefined): TourcastClient | null {
  const provided = useContext(ClientContext);
  return client ?? provided;
}

/** The channel refused (or failed): a {@link TourcastError}, e.g. code `forbidden`. */
const asTourcastError = (e: unknown): TourcastError =>
  e instanceof TourcastError ? e : new TourcastError("internal", e instanceof Error ? e.message : String(e));

export interface UseNotificationsOptions<K extends NotificationKind = NotificationKind> {
  /** Only these kinds (default: every kind). */
  kinds?: readonly K[];
  /** How many recent notifications to keep (default 20). */
  max?: number;
  /** Called once per notification as it arrives (e.g. to play a sound); need not be stable. */
  onNotification?: (notification: NotificationOf<K>) => void;
}

export interface Notifications<K extends NotificationKind = NotificationKind> {
  /** Recent notifications of the token's user, newest first, at most `max`. */
  notifications: readonly NotificationOf<K>[];
  /** The newest one. */
  latest: NotificationOf<K> | undefined;
  /** The server acknowledged the subscription (`subscribed`). */
  subscribed: boolean;
  /** Why there are none: the server refused (`forbidden`: no token, or JWT off) or did not answer. */
  error: TourcastError | undefined;
  /** Forgets the notifications held (e.g. once the user read them). */
  clear: () => void;
}

/**
 * The personal notifications of the connection's user (the token's `sub`),
 * newest first. `client` defaults to the provider's. The channel is kept
 * across reconnects, and what was missed meanwhile is replayed.
 */
export function useNotifications<K extends NotificationKind = NotificationKind>(
  client?: TourcastClient | null,
  options: UseNotificationsOptions<K> = {},
): Notifications<K> {
  const used = useChannelClient(client);
  const max = Math.max(1, options.max ?? 20);
  const kindsKey = options.kinds === undefined ? "" : [...options.kinds].sort().join(",");
  const onNotification = useRef(options.onNotification);
  onNotification.current = options.onNotification;
  const [notifications, setNotifications] = useState<readonly NotificationOf<K>[]>([]);
  const [subscribed, setSubscribed] = useState(false);
  const [error, setError] = useState<TourcastError | undefined>(undefined);

  useEffect(() => {
    if (used === null) return;
    const kinds = kindsKey === "" ? undefined : new Set(kindsKey.split(","));
    let live = true;
    setError(undefined);
    const stop = used.notifications(
      (n) => {
        if (!live || (kinds !== undefined && !kinds.has(n.kind))) return;
        // Filtered by `kinds` just above.
        const narrowed = n as NotificationOf<K>;
        setNotifications((held) => [narrowed, ...held].slice(0, max));
        onNotification.current?.(narrowed);
      },
      {
        onError: (e) => {
          if (!live) return;
          setSubscribed(false);
          setError(e);
        },
      },
    );
    stop.ready.then(
      () => live && setSubscribed(true),
      (e: unknown) => {
        if (!live) return;
        setSubscribed(false);
        setError(asTourcastError(e));
      },
    );
    return () => {
      live = false;
      setSubscribed(false);
      stop();
    };
  }, [used, kindsKey, max]);

  const clear = useMemo(() => () => setNotifications([]), []);
  return { notifications, latest: notifications[0], subscribed, error, clear };
}

/** One `stats` message and when it was taken (ms since the epoch, from its `timestamp`). */
export interface StatsSample {
  readonly at: number;
  readonly stats: StatsMessage;
}

export interface UseStatsOptions {
  /** How many samples to keep for charts (default 120: 10 minutes at the default 5 s interval). */
  maxSamples?: number;
}

export interface AdminStats {
  /** The newest `stats`. */
  stats: StatsMessage | undefined;
  /** Every `stats` received, oldest first, at most `maxSamples`: what charts plot. */
  history: readonly StatsSample[];
  /** The server acknowledged the subscription (`subscribed`). */
  subscribed: boolean;
  /** The server refused (`forbidden`: no admin claim, or JWT off without `--admin-open`). */
  error: TourcastError | undefined;
  /** Asks for a `stats` now (`refreshStats`); it also lands in `stats` and `history`. */
  refresh: () => Promise<StatsMessage>;
}

/**
 * Live gateway statistics for admin pages: the `stats` channel, kept across
 * reconnects. `client` defaults to the provider's.
 */
export function useStats(client?: TourcastClient | null, options: UseStatsOptions = {}): AdminStats {
  const used = useChannelClient(client);
  const maxSamples = Math.max(1, options.maxSamples ?? 120);
  const [history, setHistory] = useState<readonly StatsSample[]>([]);
  const [subscribed, setSubscribed] = useState(false);
  const [error, setError] = useState<TourcastError | undefined>(undefined);

  useEffect(() => {
    if (used === null) return;
    let live = true;
    setError(undefined);
    const stop = used.stats(
      (stats) => {
        if (!live) return;
        const parsed = Date.parse(stats.timestamp);
        const sample: StatsSample = { at: Number.isNaN(parsed) ? Date.now() : parsed, stats };
        setHistory((held) => {
          const next = held.length >= maxSamples ? held.slice(held.length - maxSamples + 1) : [...held];
          next.push(sample);
          return next;
        });
      },
      {
        onError: (e) => {
          if (!live) return;
          setSubscribed(false);
          setError(e);
        },
      },
    );
    stop.ready.then(
      () => live && setSubscribed(true),
      (e: unknown) => {
        if (!live) return;
        setSubscribed(false);
        setError(asTourcastError(e));
      },
    );
    return () => {
      live = false;
      setSubscribed(false);
      stop();
    };
  }, [used, maxSamples]);

  const refresh = useMemo(
    () => (): Promise<StatsMessage> =>
      used === null ? Promise.reject(new TourcastError("closed", "no client")) : used.refreshStats(),
    [used],
  );
  return { stats: history.at(-1)?.stats, history, subscribed, error, refresh };
}

// --- rooms and viewers -----------------------------------------------------------

// Several components may show the same room of one client: the first one
// joins, and the room is left when the last one goes (a tick later, so that
// StrictMode's unmount/remount neither leaves nor joins twice). A room the
// application joined itself is left to the application.
const roomHolders = new WeakMap<Room, { count: number; owned: boolean }>();

function retainRoom(room: Room, onError: (e: TourcastError) => void): () => void {
  let entry = roomHolders.get(room);
  if (entry === undefined) {
    entry = { count: 0, owned: false };
    roomHolders.set(room, entry);
  }
  const held = entry;
  if (held.count === 0 && !held.owned) {
    held.owned = !room.wanted;
    if (held.owned) room.join().catch((e: unknown) => onError(asTourcastError(e)));
  }
  held.count += 1;
  return () => {
    held.count -= 1;
    setTimeout(() => {
      if (held.count > 0 || roomHolders.get(room) !== held) return;
      roomHolders.delete(room);
      if (held.owned && room.wanted) room.leave().catch(() => undefined);
    }, 0);
  };
}

export interface UseRoomOptions {
  /** The client (default: the provider's). */
  client?: TourcastClient | null;
  /** Recent messages kept (default 200; applies when the room object is first made). */
  maxMessages?: number;
}

export interface RoomView {
  /** The recent messages, oldest first, each once (deduplicated by `seq`). */
  messages: readonly RoomMessageOf[];
  /** Who is in the room (at most 100 listed; see `memberCount`), kept live by presence. */
  members: readonly RoomMember[];
  /** How many users are in the room, exactly. */
  memberCount: number;
  /** A member on the current connection (false while reconnecting). */
  joined: boolean;
  /** `joining`, `joined`, `rejoining` (after a lost connection) or `idle`. */
  status: RoomStatus;
  /** Why the room is not joined: the server refused (`forbidden`), took the connection out, or did not answer. */
  error: TourcastError | undefined;
  /** Publishes waiting for the room to be joined again (made while offline). */
  queued: number;
  /**
   * Posts a message; resolves with its stream position once the server has it
   * (see `Room.publish` for the errors). Works while offline: it waits.
   */
  publish: (text: string, data?: RoomData) => Promise<PublishResult>;
  /** The room object (null without a client or a name). */
  room: Room | null;
}

const idleRooms = new Map<string, RoomState>();
function idleRoom(name: string): RoomState {
  let state = idleRooms.get(name);
  if (state === undefined) {
    state = { room: name, status: "idle", joined: false, members: [], memberCount: 0, messages: [], queued: 0 };
    idleRooms.set(name, state);
  }
  return state;
}

/**
 * Joins the room `name` while mounted (left when the last component showing
 * it unmounts) and renders its messages, members and presence. The room is
 * kept across reconnects: it is rejoined with `since`, so exactly the
 * messages missed arrive, and publishes made offline go out after the rejoin.
 * `client` defaults to the provider's.
 *
 * ```tsx
 * const { messages, members, publish } = useRoom("support_42");
 * ```
 */
export function useRoom(name: string, options: UseRoomOptions = {}): RoomView {
  const used = useChannelClient(options.client);
  const maxMessages = options.maxMessages;
  const room = useMemo(
    () => (used === null || name === "" ? null : used.room(name, maxMessages === undefined ? {} : { maxMessages })),
    [used, name, maxMessages],
  );
  const idle = idleRoom(name);
  const state = useSyncExternalStore(room?.subscribeState ?? noSubscribe, room?.getState ?? (() => idle), room?.getState ?? (() => idle));
  const [joinError, setJoinError] = useState<TourcastError | undefined>(undefined);

  useEffect(() => {
    if (room === null) return;
    let live = true;
    setJoinError(undefined);
    const release = retainRoom(room, (e) => live && setJoinError(e));
    return () => {
      live = false;
      release();
    };
  }, [room]);

  const publish = useCallback(
    (text: string, data?: RoomData): Promise<PublishResult> =>
      room === null ? Promise.reject(new TourcastError("not_joined", "no client or no room name")) : room.publish(text, data),
    [room],
  );

  const error = state.joined ? undefined : (state.error ?? joinError);
  return {
    messages: state.messages,
    members: state.members,
    memberCount: state.memberCount,
    joined: state.joined,
    status: state.status,
    error,
    queued: state.queued,
    publish,
    room,
  };
}

/**
 * How many connections are looking at `tourId` right now, on every instance
 * (this page included): `undefined` until the first count arrives. Subscribes
 * the tour with `viewers: true` while mounted. `client` defaults to the
 * provider's.
 *
 * ```tsx
 * const viewing = useViewers(tour.tourId);
 * return viewing === undefined ? null : <span>{viewing} viewing now</span>;
 * ```
 */
export function useViewers(tourId: string, options: { client?: TourcastClient | null } = {}): number | undefined {
  const used = useChannelClient(options.client);
  const [count, setCount] = useState<{ tourId: string; count: number | undefined }>(() => ({
    tourId,
    count: used?.viewerCount(tourId),
  }));

  useEffect(() => {
    if (used === null || tourId === "") return;
    let live = true;
    setCount({ tourId, count: used.viewerCount(tourId) });
    const stop = used.viewers(tourId, (m) => live && setCount({ tourId, count: m.count }), {
      // A refused subscribe (e.g. a token without this tour) shows no count.
      onError: () => undefined,
    });
    return () => {
      live = false;
      stop();
    };
  }, [used, tourId]);

  return count.tourId === tourId ? count.count : undefined;
}

export type {
  ClientState,
  ConnectionStatus,
  LowAlert,
  NotificationKind,
  NotificationOf,
  PublishResult,
  RoomData,
  RoomMember,
  RoomMessageOf,
  RoomState,
  RoomStatus,
  StatsMessage,
  TourView,
};
