// Reassembling a snapshot sent in parts. A snapshot larger than the
// gateway's frame limit (SNAPSHOT_FRAME_BYTES, 64 KiB by default) arrives as
// consecutive `snapshot` messages numbered `part` 1..`parts`, each with some
// of the tours; nothing comes between them. The client applies them as one
// snapshot, at the last part, and shows handlers that one message only.

import type { MessageOf } from "./api.js";

type Snapshot = MessageOf<"snapshot">;

export class SnapshotParts {
  #pending: Snapshot | undefined;
  #received = 0;

  /**
   * Takes a `snapshot` message: returns the whole snapshot once complete
   * (at once for one sent whole), `undefined` while parts are missing. A
   * part out of sequence drops what was gathered (the gateway never sends
   * one; a connection that broke mid-snapshot starts over).
   */
  add(message: Snapshot): Snapshot | undefined {
    const { part, parts } = message;
    if (part === undefined || parts === undefined || parts <= 1) {
      this.reset();
      return message;
    }
    if (part === 1) {
      const { part: _part, parts: _parts, ...whole } = message;
      this.#pending = { ...whole, tours: [...message.tours] };
      this.#received = 1;
    } else if (this.#pending !== undefined && part === this.#received + 1) {
      this.#pending.tours.push(...message.tours);
      this.#received = part;
    } else {
      this.reset();
      return undefined;
    }
    if (this.#received < parts) return undefined;
    const whole = this.#pending;
    this.reset();
    return whole;
  }

  /** Forgets a snapshot in progress (a new connection). */
  reset(): void {
    this.#pending = undefined;
    this.#received = 0;
  }
}
