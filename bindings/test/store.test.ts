import { describe, expect, it } from "vitest";
import { TourStore, type AvailabilityLow, type AvailabilityUpdated, type Snapshot } from "../client/index.js";
import { Subscriptions } from "../client/subscriptions.js";

const snapshot = (epoch: string, tours: Array<[string, number, number]>, recovered?: boolean): Snapshot => ({
  epoch,
  timestamp: "2025-01-08T10:00:00.000Z",
  tours: tours.map(([tourId, availableSeats, seq]) => ({
    tourId,
    tourName: `Tour ${tourId}`,
    availableSeats,
    maxGroupSize: 20,
    seq,
    updatedAt: "2025-01-08T09:00:00.000Z",
  })),
  ...(recovered === undefined ? {} : { recovered }),
});

const update = (tourId: string, availableSeats: number, seq: number): AvailabilityUpdated => ({
  data: { tourId, availableSeats },
  seq,
  timestamp: `2025-01-08T10:00:${String(seq % 60).padStart(2, "0")}.000Z`,
});

const low = (tourId: string, availableSeats: number, seq: number): AvailabilityLow => ({
  data: { tourId, tourTitle: `Tour ${tourId}`, availableSeats, threshold: 5 },
  seq,
  timestamp: "2025-01-08T10:00:00.000Z",
});

describe("TourStore", () => {
  it("applies newer updates and drops those whose seq is not newer", () => {
    const store = new TourStore();
    store.applySnapshot(snapshot("e1", [["paris", 20, 5]]));
    expect(store.applyUpdate(update("paris", 18, 6), "e1")).toBe(true);
    expect(store.applyUpdate(update("paris", 99, 6), "e1")).toBe(false);
    expect(store.applyUpdate(update("paris", 99, 3), "e1")).toBe(false);
    const paris = store.tours.get("paris");
    expect(paris).toMatchObject({ availableSeats: 18, seq: 6, tourName: "Tour paris", maxGroupSize: 20 });
  });

  it("keeps names and group sizes an update leaves out", () => {
    const store = new TourStore();
    store.applySnapshot(snapshot("e1", [["rome", 18, 1]]));
    store.applyUpdate(update("rome", 17, 2), "e1");
    expect(store.tours.get("rome")).toEqual({
      tourId: "rome",
      tourName: "Tour rome",
      availableSeats: 17,
      maxGroupSize: 20,
      seq: 2,
      epoch: "e1",
      updatedAt: "2025-01-08T10:00:02.000Z",
    });
  });

  it("lets a new epoch win over a higher seq of the old one", () => {
    const store = new TourStore();
    store.applySnapshot(snapshot("e1", [["paris", 3, 500]]));
    expect(store.applyUpdate(update("paris", 20, 1), "e2")).toBe(true);
    expect(store.tours.get("paris")).toMatchObject({ availableSeats: 20, seq: 1, epoch: "e2" });
  });

  it("takes a snapshot that is not older, and always one with recovered:false", () => {
    const store = new TourStore();
    store.applySnapshot(snapshot("e1", [["paris", 10, 10]]));
    expect(store.applySnapshot(snapshot("e1", [["paris", 12, 8]]))).toBe(false);
    expect(store.tours.get("paris")?.availableSeats).toBe(10);
    expect(store.applySnapshot(snapshot("e1", [["paris", 12, 8]], false))).toBe(true);
    expect(store.tours.get("paris")).toMatchObject({ availableSeats: 12, seq: 8 });
  });

  it("answers where to resume from, per tour and for every tour", () => {
    const store = new TourStore();
    expect(store.since("*")).toBeUndefined();
    store.applySnapshot(snapshot("e1", [["paris", 10, 10], ["rome", 5, 4]]));
    store.applyUpdate(update("rome", 4, 11), "e1");
    store.applyLow(low("rome", 4, 12), "e1");
    expect(store.since("paris")).toEqual({ epoch: "e1", seq: 10 });
    expect(store.since("rome")).toEqual({ epoch: "e1", seq: 12 });
    expect(store.since("*")).toEqual({ epoch: "e1", seq: 12 });
    expect(store.since("london")).toBeUndefined();
    store.applyUpdate(update("paris", 1, 1), "e2");
    expect(store.since("*")).toEqual({ epoch: "e2", seq: 1 });
  });

  it("accepts each low alert once and never an old one", () => {
    const store = new TourStore();
    store.applySnapshot(snapshot("e1", [["rome", 6, 10]]));
    expect(store.applyUpdate(update("rome", 4, 11), "e1")).toBe(true);
    // The alert may share the update's seq or have its own.
    expect(store.applyLow(low("rome", 4, 11), "e1")).toBe(true);
    expect(store.applyLow(low("rome", 4, 11), "e1")).toBe(false);
    expect(store.applyLow(low("rome", 3, 12), "e1")).toBe(true);
    expect(store.tours.get("rome")).toMatchObject({ availableSeats: 3, seq: 12 });
    // Replayed history: older than what is held.
    expect(store.applyLow(low("rome", 5, 9), "e1")).toBe(false);
  });

  it("replaces its tours map on change and keeps it on no-op", () => {
    const store = new TourStore();
    const empty = store.tours;
    store.applySnapshot(snapshot("e1", [["paris", 10, 10]]));
    const first = store.tours;
    expect(first).not.toBe(empty);
    store.applyUpdate(update("paris", 10, 9), "e1");
    expect(store.tours).toBe(first);
    store.applySnapshot(snapshot("e1", [["paris", 10, 10]]));
    expect(store.tours).toBe(first);
    store.remove(["paris"]);
    expect(store.tours.size).toBe(0);
  });
});

describe("Subscriptions (which tours' events the client keeps)", () => {
  it("follows every tour until the first subscribe, then only the wanted, even once none are", () => {
    const subs = new Subscriptions({});
    subs.connected("e1");
    // Never subscribed: the gateway broadcasts every tour, and it is kept.
    expect(subs.applyUpdate(update("london", 9, 1))).toBe("changed");
    subs.want("paris");
    expect(subs.applyUpdate(update("rome", 9, 2))).toBe("unfollowed");
    expect(subs.applyUpdate(update("paris", 9, 3))).toBe("changed");
    // The last one dropped: an event still in flight does not bring it back.
    expect(subs.unwant("paris")).toBe(true);
    expect(subs.applyUpdate(update("paris", 8, 4))).toBe("unfollowed");
    expect(subs.tours.has("paris")).toBe(false);
  });
});
