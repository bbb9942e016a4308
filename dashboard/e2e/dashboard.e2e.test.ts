// End to end, in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): RabbitMQ → gateway → WebSocket → React dashboard.
//
// Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and `cargo build --bin tourcast`.
// Each run uses its own exchange and stream, deleted at the end.

import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, type Gateway, OUTPUT, freePort, launchBrowser, sleep, startGateway } from "./harness";

const run = randomUUID().slice(0, 8);
const EXCHANGE = `tourcast_e2e_${run}`;
const STREAM = `tourcast_e2e_${run}`;

/** Starts the gateway on `port`, reading this run's exchange, and waits until it is ready. */
function startRunGateway(port: number): Promise<Gateway> {
  return startGateway(
    [
      "--rabbitmq-url", AMQP_URL,
      "--rabbitmq-exchange", EXCHANGE,
      "--rabbitmq-stream", STREAM,
      "--rabbitmq-connection-name", `tourcast-e2e-${run}`,
    ],
    port,
  );
}

describe("the live dashboard", () => {
  let port: number;
  let gateway: Gateway | undefined;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  let browser: Browser;
  let page: Page;
  const pageErrors: Error[] = [];
  let eventNo = 0;

  /** Publishes an availability event the way the platform's services do. */
  function publish(routingKey: "tour.availability.updated" | "tour.availability.low", event: object): void {
    eventNo += 1;
    const body = {
      eventId: `evt_e2e_${run}_${eventNo}`,
      eventType: routingKey,
      timestamp: new Date().toISOString(),
      ...event,
    };
    channel.publish(EXCHANGE, routingKey, Buffer.from(JSON.stringify(body)), {
      contentType: "application/json",
      persistent: true,
    });
  }

  const card = (tourId: string) => page.locator(`[data-testid="tour-card"][data-tour-id="${tourId}"]`);

  /** Waits until `tourId`'s card shows `seats`; returns how long that took. */
  async function seatsShown(tourId: string, seats: number, timeout: number): Promise<number> {
    const started = Date.now();
    await page.waitForFunction(
      ([id, n]) => document.querySelector(`[data-tour-id="${id}"]`)?.getAttribute("data-seats") === String(n),
      [tourId, seats] as const,
      { timeout, polling: "raf" },
    );
    return Date.now() - started;
  }

  beforeAll(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    connection = await amqp.connect(AMQP_URL);
    channel = await connection.createConfirmChannel();
    await channel.assertExchange(EXCHANGE, "topic", { durable: true });

    port = await freePort();
    gateway = await startRunGateway(port);

    // The catalog as the platform's services announce it.
    publish("tour.availability.updated", { tourId: "tour_paris", tourName: "Paris City Tour", availableSeats: 20, maxGroupSize: 20 });
    publish("tour.availability.updated", { tourId: "tour_london", tourName: "London Eye Experience", availableSeats: 15, maxGroupSize: 15 });
    publish("tour.availability.updated", { tourId: "tour_rome", tourName: "Rome Colosseum Tour", availableSeats: 18, maxGroupSize: 18 });
    await channel.waitForConfirms();

    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on("pageerror", (error) => pageErrors.push(error));
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    try {
      await channel?.deleteQueue(STREAM);
      await channel?.deleteQueue(`${STREAM}.checkpoints`);
      await channel?.deleteExchange(EXCHANGE);
    } finally {
      await connection?.close();
    }
  });

  it("is served by the gateway at / and renders the first snapshot", async () => {
    const response = await page.goto(`http://127.0.0.1:${port}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-type"]).toContain("text/html");
    expect(
      await response?.text(),
      "GET / must serve the embedded dashboard (src/server/dashboard.rs wired into src/server/mod.rs)",
    ).toContain('<div id="root">');
    await page.waitForSelector('[data-testid="connection"][data-status="open"]', { timeout: 10_000 });
    await expect.poll(() => page.locator('[data-testid="tour-card"]').count(), { timeout: 10_000 }).toBe(3);
    const firstSnapshotMs = await page.evaluate(() => window.__tourcast?.firstSnapshotMs);
    expect(firstSnapshotMs).toBeGreaterThan(0);
    console.log(`time from page load to first snapshot rendered: ${firstSnapshotMs} ms`);

    const paris = card("tour_paris");
    await expect.poll(() => paris.locator(".name").textContent()).toBe("Paris City Tour");
    expect(await paris.getAttribute("data-level")).toBe("green");
    expect(await paris.locator('[data-testid="max-group"]').textContent()).toBe("20");
    expect(await paris.locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("loads to a rendered snapshot quickly, over JSON and over protobuf", async () => {
    const measure = async (query: string) => {
      const samples: number[] = [];
      const other = await browser.newPage();
      other.on("pageerror", (error) => pageErrors.push(error));
      for (let i = 0; i < 5; i++) {
        await other.goto(`http://127.0.0.1:${port}/${query}`);
        await other.waitForFunction(() => window.__tourcast?.firstSnapshotMs !== undefined, undefined, {
          timeout: 10_000,
        });
        samples.push((await other.evaluate(() => window.__tourcast?.firstSnapshotMs)) ?? NaN);
      }
      // Both encodings show the same tours.
      const seats = await other.$$eval('[data-testid="tour-card"]', (cards) =>
        cards.map((c) => `${c.getAttribute("data-tour-id")}=${c.getAttribute("data-seats")}`),
      );
      await other.close();
      samples.sort((a, b) => a - b);
      return { median: samples[2] ?? NaN, samples, seats };
    };
    const json = await measure("");
    const proto = await measure("?encoding=proto");
    expect(proto.seats).toEqual(json.seats);
    expect(json.seats).toHaveLength(3);
    const metrics = { firstSnapshotMs: { json, proto } };
    writeFileSync(path.join(OUTPUT, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`);
    console.log(
      `page load → first snapshot rendered (median of 5): JSON ${json.median} ms ${JSON.stringify(json.samples)}, ` +
        `protobuf ${proto.median} ms ${JSON.stringify(proto.samples)}`,
    );
    expect(json.median).toBeLessThan(3_000);
    expect(proto.median).toBeLessThan(3_000);
  });

  it("shows events published to RabbitMQ within a second, coloured by availability", async () => {
    const latencies: number[] = [];
    for (const [seats, colour] of [
      [8, "orange"],
      [3, "red"],
      [10, "orange"],
      [11, "green"],
      [5, "orange"],
      [4, "red"],
    ] as const) {
      publish("tour.availability.updated", { tourId: "tour_london", availableSeats: seats });
      latencies.push(await seatsShown("tour_london", seats, 1_000));
      expect(await card("tour_london").getAttribute("data-level")).toBe(colour);
    }
    console.log(`RabbitMQ publish → rendered: ${latencies.join(", ")} ms`);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
  });

  it("shows a toast for tour.availability.low", async () => {
    publish("tour.availability.low", {
      tourId: "tour_rome",
      tourTitle: "Rome Colosseum Tour",
      availableSeats: 2,
      maxGroupSize: 18,
      threshold: 3,
    });
    const toast = page.locator('[data-testid="toast"][data-tour-id="tour_rome"]');
    await toast.waitFor({ state: "visible", timeout: 1_000 });
    expect(await toast.textContent()).toContain("Rome Colosseum Tour: 2 seats left (threshold 3)");
    await seatsShown("tour_rome", 2, 1_000);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard.png"), fullPage: true });
  });

  it("shows the gateway going away, reconnects by itself, and catches up with what changed meanwhile", async () => {
    // Marks this page load: a reload would lose it.
    await page.evaluate(() => {
      (window as unknown as { __sameLoad: boolean }).__sameLoad = true;
    });
    await gateway?.stop();
    gateway = undefined;
    await page.waitForSelector('[data-testid="connection"][data-connected="false"]', { timeout: 3_000 });
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-disconnected.png"), fullPage: true });

    // The world goes on while the gateway is down.
    publish("tour.availability.updated", { tourId: "tour_paris", availableSeats: 7 });
    publish("tour.availability.updated", { tourId: "tour_rome", availableSeats: 16 });
    await sleep(1_500);
    expect(await card("tour_paris").getAttribute("data-seats")).toBe("20");

    gateway = await startRunGateway(port);
    await page.waitForSelector('[data-testid="connection"][data-status="open"]', { timeout: 35_000 });
    await seatsShown("tour_paris", 7, 5_000);
    await seatsShown("tour_rome", 16, 5_000);
    expect(await card("tour_paris").getAttribute("data-level")).toBe("orange");
    expect(await page.evaluate(() => (window as unknown as { __sameLoad?: boolean }).__sameLoad)).toBe(true);

    // And it is live again.
    publish("tour.availability.updated", { tourId: "tour_paris", availableSeats: 12 });
    expect(await seatsShown("tour_paris", 12, 1_000)).toBeLessThan(1_000);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-reconnected.png"), fullPage: true });
  }, 60_000);

  it("raised no uncaught page errors", () => {
    expect(pageErrors.map((e) => e.message)).toEqual([]);
  });
});
