// The client's view of tour availability: what it holds, and whether an
// incoming message is newer than that. Pure and synchronous, so it is tested
// on its own and shared by the client, the React hook and anyone else.

import type {
  AvailabilityLow,
  AvailabilityUpdated,
  Snapshot,
  StreamPosition,
} from "../index.js";

/** One tour as the client holds it. */
export interface TourView {
  readonly tourId: string;
  readonly tourName?: string;
  readonly availableSeats: number;
  readonly maxGroupSize?: number;
  /** Sequence number of the last event applied, counted in `epoch`. */
  readonly seq: number;
  /** The server history `seq` counts in. */
  readonly epoch: string;
  /** When the last applied event happened (RFC 3339). */
  readonly updatedAt: string;
}

/** A `tour.availability.low` alert as the client keeps it. */
export interface LowAlert {
  /** Unique within a client: `${epoch}:${seq}:${tourId}`. */
  readonly key: string;
  readonly tourId: string;
  readonly tourTitle: string;
  readonly availableSeats: number;
  readonly maxGroupSize?: number;
  readonly threshold: number;
  readonly seq: number;
  readonly epoch: string;
  /** When the event happened (RFC 3339). */
  readonly timestamp: string;
  /** When this client received it (`Date.now()`). */
  readonly receivedAt: number;
}

/** Sets the keys of `optional` whose value is defined; leaves the others out. */
function withOptional<B extends object, O extends object>(
  base: B,
  optional: O,
): B & { [K in keyof O]?: Exclude<O[K], undefined> } {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) out[key] = value;
  }
  return out as B & { [K in keyof O]?: Exclude<O[K], undefined> };
}

export { withOptional };

/**
 * Tour state with stale-update protection. An update is applied only when its
 * `seq` is newer than what is held for that tour in the same epoch; a message
 * from another epoch (the server's history was reset) always wins.
 */
export class TourStore {
  /** Replaced, never mutated, so that readers can compare by identity. */
  #tours: ReadonlyMap<string, TourView> = new Map();
  /** Last low-availability alert accepted per tour. */
  #lastLow = new Map<string, StreamPosition>();
  /** The newest position seen across all tours (what a `"*"` resubscribe sends). */
  #high: StreamPosition | undefined;

  /** Every tour held, by id. The map is replaced on every change. */
  get tours(): ReadonlyMap<string, TourView> {
    return this.#tours;
  }

  /** Whether `seq` in `epoch` is newer than what is held for `tourId`. */
  isNewer(tourId: string, epoch: string, seq: number): boolean {
    const held = this.#tours.get(tourId);
    return held === undefined || held.epoch !== epoch || seq > held.seq;
  }

  /** Where to resume `tourId` (or `"*"`, every tour) from, if anything is held. */
  since(tourId: string): StreamPosition | undefined {
    if (tourId === "*") return this.#high === undefined ? undefined : { ...this.#high };
    const held = this.#tours.get(tourId);
    return held === undefined ? undefined : { epoch: held.epoch, seq: held.seq };
  }

  /**
   * Applies a snapshot. Entries replace what is held unless they are older in
   * the same epoch; `recovered: false` means "this replaces your state", so
   * its entries always win. Returns whether anything changed.
   */
  applySnapshot(snapshot: Snapshot): boolean {
    const next = new Map(this.#tours);
    let changed = false;
    for (const tour of snapshot.tours) {
      const held = next.get(tour.tourId);
      const replace =
        snapshot.recovered === false ||
        held === undefined ||
        held.epoch !== snapshot.epoch ||
        tour.seq >= held.seq;
      if (!replace) continue;
      const view: TourView = withOptional(
        {
          tourId: tour.tourId,
          availableSeats: tour.availableSeats,
          seq: tour.seq,
          epoch: snapshot.epoch,
          updatedAt: tour.updatedAt,
        },
        {
          tourName: tour.tourName ?? held?.tourName,
          maxGroupSize: tour.maxGroupSize ?? held?.maxGroupSize,
        },
      );
      if (!sameView(held, view)) {
        next.set(tour.tourId, view);
        changed = true;
      }
      this.#raise(snapshot.epoch, tour.seq);
    }
    if (changed) this.#tours = next;
    return changed;
  }

  /** Applies an update unless it is stale; returns whether it was applied. */
  applyUpdate(message: AvailabilityUpdated, epoch: string): boolean {
    const { data, seq } = message;
    if (!this.isNewer(data.tourId, epoch, seq)) return false;
    const held = this.#tours.get(data.tourId);
    this.#set(
      withOptional(
        {
          tourId: data.tourId,
          availableSeats: data.availableSeats,
          seq,
          epoch,
          updatedAt: message.timestamp,
        },
        {
          tourName: data.tourName ?? held?.tourName,
          maxGroupSize: data.maxGroupSize ?? held?.maxGroupSize,
        },
      ),
    );
    this.#raise(epoch, seq);
    return true;
  }

  /**
   * Applies a low-availability alert: the seats it carries update the tour
   * when newer, and the alert itself is new unless an alert at or after its
   * `seq` was already accepted, or the tour's state is already past it.
   * Returns whether the alert is new (and so should be shown).
   */
  applyLow(message: AvailabilityLow, epoch: string): boolean {
    const { data, seq } = message;
    const held = this.#tours.get(data.tourId);
    const last = this.#lastLow.get(data.tourId);
    const staleAlert =
      (last !== undefined && last.epoch === epoch && seq <= last.seq) ||
      (held !== undefined && held.epoch === epoch && seq < held.seq);
    if (staleAlert) return false;
    this.#lastLow.set(data.tourId, { epoch, seq });
    if (this.isNewer(data.tourId, epoch, seq)) {
      this.#set(
        withOptional(
          {
            tourId: data.tourId,
            availableSeats: data.availableSeats,
            seq,
            epoch,
            updatedAt: message.timestamp,
          },
          {
            tourName: held?.tourName ?? data.tourTitle,
            maxGroupSize: data.maxGroupSize ?? held?.maxGroupSize,
          },
        ),
      );
    }
    this.#raise(epoch, seq);
    return true;
  }

  /** Forgets tours (after an unsubscribe). */
  remove(tourIds: Iterable<string>): boolean {
    const next = new Map(this.#tours);
    let changed = false;
    for (const id of tourIds) changed = next.delete(id) || changed;
    if (changed) this.#tours = next;
    return changed;
  }

  /** Forgets everything. */
  clear(): void {
    this.#tours = new Map();
    this.#lastLow.clear();
    this.#high = undefined;
  }

  #set(view: TourView): void {
    const next = new Map(this.#tours);
    next.set(view.tourId, view);
    this.#tours = next;
  }

  #raise(epoch: string, seq: number): void {
    if (this.#high === undefined || this.#high.epoch !== epoch || seq > this.#high.seq) {
      this.#high = { epoch, seq };
    }
  }
}

function sameView(a: TourView | undefined, b: TourView): boolean {
  return (
    a !== undefined &&
    a.tourId === b.tourId &&
    a.tourName === b.tourName &&
    a.availableSeats === b.availableSeats &&
    a.maxGroupSize === b.maxGroupSize &&
    a.seq === b.seq &&
    a.epoch === b.epoch &&
    a.updatedAt === b.updatedAt
  );
}
