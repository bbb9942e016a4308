import { describe, expect, it } from "vitest";
import { backoffDelay, MAX_RECONNECT_DELAY_MS, resolveBackoff } from "../client/index.js";

describe("reconnect backoff", () => {
  it("grows exponentially from the initial delay", () => {
    const options = resolveBackoff({ initialDelayMs: 100, jitter: 0 });
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n, options))).toEqual([100, 200, 400, 800, 1600]);
  });

  it("is capped at 30 s, whatever the options say", () => {
    const defaults = resolveBackoff();
    expect(backoffDelay(50, defaults, () => 0)).toBe(MAX_RECONNECT_DELAY_MS);
    expect(MAX_RECONNECT_DELAY_MS).toBe(30_000);
    const greedy = resolveBackoff({ initialDelayMs: 10_000, maxDelayMs: 120_000, jitter: 0 });
    expect(backoffDelay(10, greedy)).toBe(30_000);
    expect(backoffDelay(1e6, resolveBackoff({ jitter: 0 }))).toBe(30_000);
  });

  it("spreads delays with jitter within [d × (1 − jitter), d]", () => {
    const options = resolveBackoff({ initialDelayMs: 1_000, jitter: 0.5 });
    expect(backoffDelay(0, options, () => 0)).toBe(1_000);
    expect(backoffDelay(0, options, () => 0.999999)).toBe(500);
    const samples = Array.from({ length: 200 }, () => backoffDelay(2, options));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(2_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(4_000);
    expect(new Set(samples).size).toBeGreaterThan(50);
  });

  it("defaults to 500 ms doubling, half jitter, reset after 10 s stable", () => {
    expect(resolveBackoff()).toEqual({
      initialDelayMs: 500,
      maxDelayMs: 30_000,
      multiplier: 2,
      jitter: 0.5,
      stableAfterMs: 10_000,
    });
  });
});
