// Channels behind TourcastClient (SPEC "Channels"): the user's own
// `notifications` and the admins' `stats`. What the application wants
// (kept across reconnects), who listens, the newest notification position
// (for `since` after a reconnect, and to drop what was already delivered)
// and the latest `stats`.

import type { Channel, Notification, NotificationKind, StreamPosition } from "../index.js";
import type { MessageOf } from "./api.js";

/** A `notification` message, narrowed to `kind` when given. */
export type NotificationOf<K extends NotificationKind = NotificationKind> = MessageOf<"notification"> & { kind: K };
/** A `stats` message. */
export type StatsMessage = MessageOf<"stats">;

/** What applying a notification did. */
export type NotificationApplied = "new" | "stale" | "unfollowed";

export type { Notification };

export class Channels {
  /** The channels the application wants (kept across reconnects). */
  readonly #wanted = new Set<Channel>();
  /** The newest notification delivered: where a resubscribe resumes from. */
  #lastNotification: StreamPosition | undefined;
  #latestStats: StatsMessage | undefined;

  get wanted(): ReadonlySet<Channel> {
    return new Set(this.#wanted);
  }
  has(channel: Channel): boolean {
    return this.#wanted.has(channel);
  }
  /** The newest notification's position (epoch of its connection, seq), if any arrived. */
  get lastNotification(): StreamPosition | undefined {
    return this.#lastNotification === undefined ? undefined : { ...this.#lastNotification };
  }
  get latestStats(): StatsMessage | undefined {
    return this.#latestStats;
  }

  want(channel: Channel): void {
    this.#wanted.add(channel);
  }
  unwant(channel: Channel): void {
    this.#wanted.delete(channel);
  }

  /**
   * Where a subscribe to `channel` resumes from: the newest notification
   * delivered. Stats have no history; neither has a channel nothing arrived on.
   */
  since(channel: Channel): StreamPosition | undefined {
    return channel === "notifications" ? this.lastNotification : undefined;
  }

  /** The channels to subscribe again on a new connection, except those already pending. */
  toRenew(pending: (channel: Channel) => boolean): Channel[] {
    return [...this.#wanted].filter((channel) => !pending(channel));
  }

  /**
   * A notification arrived on a connection counting `seq` in `epoch`. It is
   * new unless one at or after its `seq` was delivered in the same epoch (a
   * replay overlapping what was seen); one from another epoch (the server's
   * history was reset) always is.
   */
  applyNotification(message: Notification, epoch: string): NotificationApplied {
    if (!this.#wanted.has("notifications")) return "unfollowed";
    const last = this.#lastNotification;
    if (last !== undefined && last.epoch === epoch && message.seq <= last.seq) return "stale";
    this.#lastNotification = { epoch, seq: message.seq };
    return "new";
  }

  /**
   * The server's `subscribed` for `notifications` says where the channel
   * starts (`seq`): a resubscribe resumes from there until a notification
   * moves it on, so nothing sent while disconnected early is lost.
   */
  applySubscribed(message: MessageOf<"subscribed">, epoch: string): void {
    if (message.channel !== "notifications" || message.seq === undefined) return;
    // A recovery's missed notifications follow this ack, all at or before
    // its `seq`: they move the position themselves.
    if (message.recovered === true) return;
    const last = this.#lastNotification;
    if (last === undefined || last.epoch !== epoch || last.seq < message.seq) {
      this.#lastNotification = { epoch, seq: message.seq };
    }
  }

  applyStats(message: StatsMessage): void {
    this.#latestStats = message;
  }
}
