// Subscriptions and recovery behind TourcastClient: the tours the
// application wants (kept across reconnects), the state held for them (a
// TourStore, with stale-update protection), the recent low alerts, and the
// `since` each resubscribe resumes from after a reconnect.

import type { AvailabilityLow, AvailabilityUpdated, Snapshot, StreamPosition } from "../index.js";
import { TourStore, type LowAlert, type TourView } from "./store.js";

/** What applying an event did: changed the state, changed nothing, or was dropped as stale. */
export type Applied = "changed" | "unchanged" | "stale";

export class Subscriptions {
  readonly #store = new TourStore();
  /** The tours the application wants (`"*"` for all). */
  readonly #wanted = new Set<string>();
  /** The tours whose `viewers` count is wanted too (subscribed with `viewers: true`). */
  readonly #viewers = new Set<string>();
  readonly #maxAlerts: number;
  #alerts: readonly LowAlert[] = [];
  /** The server history the current connection counts `seq` in. */
  #epoch: string | undefined;
  /**
   * Whether the application ever subscribed or unsubscribed: until then every
   * tour is followed (the gateway broadcasts to a connection that never
   * subscribed); after, only what is wanted, even when that is nothing.
   */
  #chosen = false;

  constructor(options: { maxAlerts?: number | undefined }) {
    this.#maxAlerts = options.maxAlerts ?? 20;
  }

  get tours(): ReadonlyMap<string, TourView> {
    return this.#store.tours;
  }
  get alerts(): readonly LowAlert[] {
    return this.#alerts;
  }
  get epoch(): string | undefined {
    return this.#epoch;
  }
  /** A copy of the tours wanted. */
  get wanted(): ReadonlySet<string> {
    return new Set(this.#wanted);
  }

  /** The `connection` message named the history `seq` now counts in. */
  connected(epoch: string): void {
    this.#epoch = epoch;
  }

  want(tourId: string): void {
    this.#chosen = true;
    this.#wanted.add(tourId);
  }

  /** Drops `tourId` from the tours wanted (a refused subscribe). */
  drop(tourId: string): void {
    this.#wanted.delete(tourId);
    this.#viewers.delete(tourId);
  }

  /** Whether `tourId` is subscribed with its `viewers` count. */
  wantsViewers(tourId: string): boolean {
    return this.#viewers.has(tourId);
  }
  wantViewers(tourId: string): void {
    this.#viewers.add(tourId);
  }
  unwantViewers(tourId: string): void {
    this.#viewers.delete(tourId);
  }

  /**
   * Stops following `tourId` and forgets its state, unless `"*"` (or, for
   * `"*"`, a tour's own subscription) still covers it. Returns whether the
   * state changed.
   */
  unwant(tourId: string): boolean {
    this.#chosen = true;
    this.#wanted.delete(tourId);
    this.#viewers.delete(tourId);
    if (this.#wanted.has("*")) return false;
    const forget = tourId === "*" ? [...this.#store.tours.keys()] : [tourId];
    return this.#store.remove(forget.filter((id) => !this.#wanted.has(id)));
  }

  /** Where to resume `tourId` from (for `"*"`, the highest `seq` held). */
  since(tourId: string): StreamPosition | undefined {
    return this.#store.since(tourId);
  }

  /** The tours to subscribe again on a new connection, except those a subscribe is already pending for. */
  toRenew(pending: ReadonlySet<string>): string[] {
    return [...this.#wanted].filter((tourId) => !pending.has(tourId));
  }

  /**
   * Whether events of `tourId` are wanted: every tour until the first
   * subscribe (the gateway broadcasts to such connections), then only the
   * subscribed ones (events still in flight when a subscription changed are
   * ignored, also after the last one is dropped).
   */
  follows(tourId: string): boolean {
    const wanted = this.#wanted;
    return !this.#chosen || wanted.has("*") || wanted.has(tourId);
  }

  applySnapshot(message: Snapshot): Applied {
    return this.#store.applySnapshot(message) ? "changed" : "unchanged";
  }

  applyUpdate(message: AvailabilityUpdated): Applied | "unfollowed" {
    if (!this.follows(message.data.tourId)) return "unfollowed";
    return this.#store.applyUpdate(message, this.#epoch ?? "") ? "changed" : "stale";
  }

  applyLow(message: AvailabilityLow): Applied | "unfollowed" {
    if (!this.follows(message.data.tourId)) return "unfollowed";
    const epoch = this.#epoch ?? "";
    if (!this.#store.applyLow(message, epoch)) return "stale";
    const d = message.data;
    const alert: LowAlert = {
      key: `${epoch}:${message.seq}:${d.tourId}`,
      tourId: d.tourId,
      tourTitle: d.tourTitle,
      availableSeats: d.availableSeats,
      threshold: d.threshold,
      seq: message.seq,
      epoch,
      timestamp: message.timestamp,
      receivedAt: Date.now(),
      ...(d.maxGroupSize === undefined ? {} : { maxGroupSize: d.maxGroupSize }),
    };
    this.#alerts = [alert, ...this.#alerts].slice(0, this.#maxAlerts);
    return "changed";
  }
}
