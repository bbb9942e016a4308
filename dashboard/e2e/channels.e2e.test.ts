// End to end, in headless Chromium: the channels on the dashboard.
// - the admin page (#/admin) on `--demo --admin-open`: its uPlot charts
//   render and gain points as stats arrive, with the demo feed's events;
// - on a RabbitMQ-backed gateway with JWT on: a notification toast after
//   `tourcast publish --kind booking-confirmed --user-id <the token's sub>`,
//   none for another user's; the admin page refused to a non-admin token and
//   live for an admin's while events are published.
//
// Needs RabbitMQ on 127.0.0.1:5672 and `cargo build --bin tourcast`. The
// RabbitMQ gateway reads an exchange and stream of this run's own, deleted at the end.

import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import amqp from "amqplib";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, BIN, type Gateway, OUTPUT, launchBrowser, sleep, startGateway } from "./harness";

const run = randomUUID().slice(0, 8);
const EXCHANGE = `tourcast_e2e_ch_${run}`;
const STREAM = `tourcast_e2e_ch_${run}`;
const SECRET = `e2e-secret-${run}`;
const USER = `e2e-user-${run}`;

const exec = promisify(execFile);

/** `tourcast <args>` (token, publish), its stdout. */
async function tourcast(args: string[]): Promise<string> {
  const { stdout } = await exec(BIN, args, { timeout: 20_000 });
  return stdout.trim();
}

/** How many points a chart's uPlot holds (mirrored by the page in data-points). */
const points = (page: Page, testId: string) =>
  page.locator(`[data-testid="${testId}"]`).evaluate((el) => Number(el.getAttribute("data-points") ?? "0"));

let browser: Browser;
const pageErrors: Error[] = [];

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (error) => pageErrors.push(error));
  return page;
}

describe("the admin page on `--demo --admin-open`", () => {
  let gateway: Gateway;
  let page: Page;
  beforeAll(async () => {
    gateway = await startGateway(["--demo", "--demo-interval", "100ms", "--admin-open", "--stats-interval", "1s"]);
    page = await newPage();
  }, 60_000);
  afterAll(async () => {
    await page?.close();
    await gateway?.stop();
  });

  it("is linked from the availability page", async () => {
    await page.goto(`http://127.0.0.1:${gateway.port}/`);
    await page.waitForSelector('[data-testid="connection"][data-status="open"]', { timeout: 10_000 });
    await page.click('[data-testid="admin-link"]');
    await page.waitForSelector('[data-testid="chart-connections"]', { timeout: 10_000 });
    expect(new URL(page.url()).hash).toBe("#/admin");
  });

  it("draws uPlot charts that gain points as stats arrive, with the demo's events flowing", async () => {
    // uPlot draws into a canvas inside each chart.
    for (const id of ["chart-connections", "chart-rates", "chart-deliveries"]) {
      await page.locator(`[data-testid="${id}"] .uplot canvas`).first().waitFor({ timeout: 5_000 });
    }
    const before = await points(page, "chart-rates");
    expect(before).toBeGreaterThanOrEqual(1);
    await expect.poll(() => points(page, "chart-rates"), { timeout: 6_000 }).toBeGreaterThanOrEqual(before + 3);
    expect(await points(page, "chart-connections")).toBeGreaterThanOrEqual(before + 3);
    // The figures move too: events flow, and this page is one of the clients.
    await expect
      .poll(async () => Number(await page.locator('[data-testid="total-eps"]').textContent()), { timeout: 5_000 })
      .toBeGreaterThan(0);
    expect(Number(await page.locator('[data-testid="total-clients"]').textContent())).toBeGreaterThanOrEqual(1);
    // One instance, one line per instance beside the total.
    expect(await page.locator('[data-testid="instances"] tbody tr').count()).toBe(1);
    expect(await page.locator('[data-testid="chart-connections"]').getAttribute("data-series")).toBe("2");
    // The legend shows the series uPlot plots.
    expect(await page.locator('[data-testid="chart-rates"] .u-legend').textContent()).toContain("deliveries/s");
    await page.screenshot({ path: path.join(OUTPUT, "admin.png"), fullPage: true });
  });
});

describe("channels on a RabbitMQ-backed gateway with JWT on", () => {
  let gateway: Gateway;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  let userToken: string;
  let adminToken: string;

  beforeAll(async () => {
    connection = await amqp.connect(AMQP_URL);
    channel = await connection.createConfirmChannel();
    await channel.assertExchange(EXCHANGE, "topic", { durable: true });
    gateway = await startGateway([
      "--rabbitmq-url", AMQP_URL,
      "--rabbitmq-exchange", EXCHANGE,
      "--rabbitmq-stream", STREAM,
      "--rabbitmq-connection-name", `tourcast-e2e-ch-${run}`,
      "--jwt-secret", SECRET,
      "--stats-interval", "1s",
    ]);
    // Tokens as the README says to make them.
    userToken = await tourcast(["token", "--secret", SECRET, "--sub", USER, "--tours", "*"]);
    adminToken = await tourcast(["token", "--secret", SECRET, "--sub", `e2e-admin-${run}`, "--tours", "*", "--admin"]);
    channel.publish(
      EXCHANGE,
      "tour.availability.updated",
      Buffer.from(JSON.stringify({ eventId: `e2e_${run}_0`, tourId: "tour_paris", tourName: "Paris City Tour", availableSeats: 20, maxGroupSize: 20 })),
      { contentType: "application/json", persistent: true },
    );
    await channel.waitForConfirms();
  }, 90_000);

  afterAll(async () => {
    await gateway?.stop();
    try {
      await channel?.deleteQueue(STREAM);
      await channel?.deleteQueue(`${STREAM}.checkpoints`);
      await channel?.deleteExchange(EXCHANGE);
    } finally {
      await connection?.close();
    }
  });

  const notify = (userId: string, bookingId: string) =>
    tourcast([
      "publish",
      "--rabbitmq-url", AMQP_URL,
      "--rabbitmq-exchange", EXCHANGE,
      "--kind", "booking-confirmed",
      "--user-id", userId,
      "--booking-id", bookingId,
      "--tour-id", "tour_paris",
      "--tour-name", "Paris City Tour",
      "--seats", "2",
      "--message", `Your booking ${bookingId} is confirmed!`,
    ]);

  it("shows a toast for the token's user's notification after `tourcast publish`, and none for another user's", async () => {
    const page = await newPage();
    await page.goto(`http://127.0.0.1:${gateway.port}/?token=${encodeURIComponent(userToken)}`);
    await page.waitForSelector('[data-testid="connection"][data-status="open"]', { timeout: 10_000 });
    await page.locator('[data-testid="tour-card"][data-tour-id="tour_paris"]').waitFor({ timeout: 5_000 });
    // The subscription is acknowledged before anything is published.
    await sleep(300);

    const theirs = `booking_other_${run}`;
    const ours = `booking_${run}`;
    await notify(`someone-else-${run}`, theirs);
    const published = Date.now();
    await notify(USER, ours);
    const toast = page.locator(`[data-testid="notification-toast"][data-booking-id="${ours}"]`);
    await toast.waitFor({ state: "visible", timeout: 3_000 });
    console.log(`tourcast publish (exit) → toast shown: ${Date.now() - published} ms`);
    expect(await toast.getAttribute("data-kind")).toBe("booking.confirmed");
    expect(await toast.textContent()).toContain(`Your booking ${ours} is confirmed!`);
    expect(await toast.textContent()).toContain("Paris City Tour");
    expect(await page.locator(`[data-testid="notification-toast"][data-booking-id="${theirs}"]`).count()).toBe(0);
    expect(await page.locator('[data-testid="notifications-error"]').count()).toBe(0);
    await page.screenshot({ path: path.join(OUTPUT, "notification-toast.png"), fullPage: true });
    await page.close();
  });

  it("refuses the admin page to a non-admin token, with an explanation", async () => {
    const page = await newPage();
    await page.goto(`http://127.0.0.1:${gateway.port}/?token=${encodeURIComponent(userToken)}#/admin`);
    const banner = page.locator('[data-testid="stats-error"]');
    await banner.waitFor({ timeout: 10_000 });
    expect(await banner.getAttribute("data-code")).toBe("forbidden");
    expect(await page.locator('[data-testid="chart-connections"]').count()).toBe(0);
    await page.close();
  });

  it("shows live charts to an admin while events flow through RabbitMQ", async () => {
    const page = await newPage();
    await page.goto(`http://127.0.0.1:${gateway.port}/?token=${encodeURIComponent(adminToken)}#/admin`);
    await page.locator('[data-testid="chart-rates"] .uplot canvas').first().waitFor({ timeout: 10_000 });
    const before = await points(page, "chart-rates");

    // A booking service at work: 20 events a second for 3 s.
    let n = 0;
    const feed = setInterval(() => {
      n += 1;
      channel.publish(
        EXCHANGE,
        "tour.availability.updated",
        Buffer.from(JSON.stringify({ eventId: `e2e_${run}_${n}`, tourId: "tour_paris", availableSeats: 20 - (n % 15) })),
        { contentType: "application/json", persistent: true },
      );
    }, 50);
    try {
      // Two more samples (1 s interval) while events flow, the last with events/s > 0.
      await expect
        .poll(
          async () =>
            (await points(page, "chart-rates")) >= before + 2 &&
            Number(await page.locator('[data-testid="total-eps"]').textContent()) > 0,
          { timeout: 6_000 },
        )
        .toBe(true);
    } finally {
      clearInterval(feed);
    }
    expect(await points(page, "chart-connections")).toBeGreaterThanOrEqual(before + 2);
    expect(await page.locator('[data-testid="instances"] tbody tr td').nth(5).textContent()).toContain("rabbitmq");
    await page.screenshot({ path: path.join(OUTPUT, "admin-rabbitmq.png"), fullPage: true });
    await page.close();
  });

  it("raised no uncaught page errors", () => {
    expect(pageErrors.map((e) => e.message)).toEqual([]);
  });
});
