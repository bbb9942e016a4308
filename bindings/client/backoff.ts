// Reconnect delays: exponential backoff with jitter, capped.

/** How the client waits between reconnect attempts. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms (default 500). */
  initialDelayMs?: number;
  /** Upper bound of any delay, in ms (default 30 000; never more than 30 000). */
  maxDelayMs?: number;
  /** Growth factor per failed attempt (default 2). */
  multiplier?: number;
  /**
   * Fraction of each delay that is randomised (default 0.5): the delay is
   * drawn uniformly from [d × (1 − jitter), d], so that clients cut off
   * together do not come back together.
   */
  jitter?: number;
  /** A connection open this long (ms) counts as stable and resets the backoff (default 10 000). */
  stableAfterMs?: number;
}

/** The hard cap of any reconnect delay, whatever the options say. */
export const MAX_RECONNECT_DELAY_MS = 30_000;

export type ResolvedBackoff = Required<BackoffOptions>;

export function resolveBackoff(options: BackoffOptions = {}): ResolvedBackoff {
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  return {
    initialDelayMs: clamp(options.initialDelayMs ?? 500, 1, MAX_RECONNECT_DELAY_MS),
    maxDelayMs: clamp(options.maxDelayMs ?? MAX_RECONNECT_DELAY_MS, 1, MAX_RECONNECT_DELAY_MS),
    multiplier: clamp(options.multiplier ?? 2, 1, 100),
    jitter: clamp(options.jitter ?? 0.5, 0, 1),
    stableAfterMs: Math.max(0, options.stableAfterMs ?? 10_000),
  };
}

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry
 * after a connection was lost). `random` returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  options: ResolvedBackoff,
  random: () => number = Math.random,
): number {
  const exponential = options.initialDelayMs * options.multiplier ** Math.max(0, attempt);
  const capped = Math.min(options.maxDelayMs, exponential);
  return Math.round(capped * (1 - options.jitter * random()));
}
