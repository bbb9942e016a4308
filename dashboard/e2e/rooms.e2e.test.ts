// End to end, in headless Chromium: the support chat (#/support/<room>) and
// "N viewing now" on the tour cards.
// - two pages on TWO gateway instances (RabbitMQ-backed, the same exchange
//   and stream of this run's own, `--rooms-open`) chat: each message shows
//   once on both, in the same order with the same seq; the member list
//   shows both, and shrinks when one page leaves; a reload recovers the
//   history;
// - on `--demo`: "N viewing now" follows the pages open, and the demo's room
//   `support_demo` can be joined.
// Screenshots go to test-output/.
//
// Needs RabbitMQ on 127.0.0.1:5672 and `cargo build --bin tourcast`.

import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, type Gateway, OUTPUT, launchBrowser, sleep, startGateway } from "./harness";

const run = randomUUID().slice(0, 8);
const EXCHANGE = `tourcast_e2e_rooms_${run}`;
const STREAM = `tourcast_e2e_rooms_${run}`;
const ROOM = `support_e2e_${run}`;

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
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.on("pageerror", (error) => pageErrors.push(error));
  return page;
}

/** The messages a page shows: [seq, from, text], in order. */
const shown = (page: Page) =>
  page.locator('[data-testid="message"]').evaluateAll((items) =>
    items.map((li) => [
      Number(li.getAttribute("data-seq")),
      li.getAttribute("data-from") ?? "",
      li.querySelector('[data-testid="message-text"]')?.textContent ?? "",
    ]),
  );
const members = (page: Page) =>
  page.locator('[data-testid="member"]').evaluateAll((items) => items.map((li) => li.getAttribute("data-user-id") ?? "").sort());
const clientId = (page: Page) =>
  page.evaluate(() => document.querySelector('[data-testid="client-id"]')?.textContent?.replace("connection ", "") ?? "");

async function openChat(page: Page, port: number): Promise<string> {
  await page.goto(`http://127.0.0.1:${port}/#/support/${ROOM}`);
  await page.waitForSelector('[data-testid="room-status"][data-joined="true"]', { timeout: 10_000 });
  await expect.poll(() => clientId(page), { timeout: 5_000 }).not.toBe("…");
  return clientId(page);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('[data-testid="composer"]', text);
  await page.click('[data-testid="send"]');
}

describe("the support chat on two RabbitMQ-backed instances with --rooms-open", () => {
  let a: Gateway;
  let b: Gateway;
  let pageA: Page;
  let pageB: Page;
  let idA: string;
  let idB: string;
  let args: string[];

  beforeAll(async () => {
    args = [
      "--rabbitmq-url", AMQP_URL,
      "--rabbitmq-exchange", EXCHANGE,
      "--rabbitmq-stream", STREAM,
      "--rabbitmq-connection-name", `tourcast-e2e-rooms-${run}`,
      "--rooms-open",
      "--stats-interval", "1s",
    ];
    [a, b] = await Promise.all([startGateway(args), startGateway(args)]);
    [pageA, pageB] = await Promise.all([newPage(), newPage()]);
  }, 90_000);

  afterAll(async () => {
    await pageA?.close();
    await pageB?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    const connection = await amqp.connect(AMQP_URL);
    try {
      const channel = await connection.createChannel();
      await channel.deleteQueue(STREAM);
      await channel.deleteQueue(`${STREAM}.checkpoints`);
      await channel.deleteExchange(EXCHANGE);
    } finally {
      await connection.close();
    }
  });

  it("is linked from the availability page", async () => {
    await pageA.goto(`http://127.0.0.1:${a.port}/`);
    await pageA.waitForSelector('[data-testid="connection"][data-status="open"]', { timeout: 10_000 });
    expect(await pageA.getAttribute('[data-testid="support-link"]', "href")).toContain("#/support/support_demo");
  });

  it("shows both members, on both pages, each on its own instance", async () => {
    idA = await openChat(pageA, a.port);
    idB = await openChat(pageB, b.port);
    expect(idA).not.toBe(idB);
    for (const page of [pageA, pageB]) {
      await expect.poll(() => members(page), { timeout: 5_000 }).toEqual([idA, idB].sort());
      expect(await page.textContent('[data-testid="member-count"]')).toBe("2");
    }
  });

  it("chats: every message once on both pages, in the same order, with the same seq and its sender", async () => {
    await say(pageA, "Bonjour ! I booked the Paris tour.");
    await expect.poll(async () => (await shown(pageB)).length, { timeout: 5_000 }).toBe(1);
    // Each waits for the previous one: two senders' messages race for the
    // stream, and the test wants a known order.
    await say(pageB, "Hello! How can I help?");
    await expect.poll(async () => (await shown(pageA)).length, { timeout: 5_000 }).toBe(2);
    await say(pageA, "Can I add one seat?");
    for (const page of [pageA, pageB]) await expect.poll(async () => (await shown(page)).length, { timeout: 5_000 }).toBe(3);
    await sleep(500); // a duplicate would show up meanwhile
    const onA = await shown(pageA);
    expect(await shown(pageB)).toEqual(onA);
    expect(onA.map(([, from, text]) => [from, text])).toEqual([
      [idA, "Bonjour ! I booked the Paris tour."],
      [idB, "Hello! How can I help?"],
      [idA, "Can I add one seat?"],
    ]);
    const seqs = onA.map(([seq]) => seq as number);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(3);
    // The page marks its own messages.
    expect(await pageA.locator('[data-testid="message"].mine').count()).toBe(2);
    await pageA.screenshot({ path: path.join(OUTPUT, "support-chat-a.png"), fullPage: true });
    await pageB.screenshot({ path: path.join(OUTPUT, "support-chat-b.png"), fullPage: true });
  });

  it("keeps a message written while the page's gateway is down, and sends it once after the reconnect", async () => {
    const before = (await shown(pageA)).length;
    await b.stop();
    await pageB.waitForSelector('[data-testid="room-status"][data-status="rejoining"]', { timeout: 5_000 });
    await say(pageB, "Written while offline");
    await expect.poll(() => pageB.textContent('[data-testid="room-status"]'), { timeout: 2_000 }).toContain("1 waiting to be sent");
    await pageB.screenshot({ path: path.join(OUTPUT, "support-chat-offline.png"), fullPage: true });
    b = await startGateway(args, b.port);
    await pageB.waitForSelector('[data-testid="room-status"][data-joined="true"]', { timeout: 15_000 });
    for (const page of [pageA, pageB]) {
      await expect
        .poll(async () => (await shown(page)).filter(([, , text]) => text === "Written while offline").length, { timeout: 5_000 })
        .toBe(1);
    }
    await sleep(500);
    expect(await shown(pageB)).toEqual(await shown(pageA));
    expect((await shown(pageA)).length).toBe(before + 1);
    expect(await pageB.textContent('[data-testid="room-status"]')).not.toContain("waiting");
    // A new connection on the restarted instance: a new anonymous member.
    idB = await clientId(pageB);
    await expect.poll(() => members(pageA), { timeout: 5_000 }).toEqual([idA, idB].sort());
  });

  it("updates the member list when one page leaves", async () => {
    await pageB.goto(`http://127.0.0.1:${b.port}/`); // away from the chat: the room is left
    await expect.poll(() => members(pageA), { timeout: 5_000 }).toEqual([idA]);
    expect(await pageA.textContent('[data-testid="member-count"]')).toBe("1");
    await pageA.screenshot({ path: path.join(OUTPUT, "support-chat-member-left.png"), fullPage: true });
  });

  it("recovers the history after a reload", async () => {
    const before = await shown(pageA);
    await pageA.reload();
    await pageA.waitForSelector('[data-testid="room-status"][data-joined="true"]', { timeout: 10_000 });
    await expect.poll(() => shown(pageA), { timeout: 5_000 }).toEqual(before);
    // A new connection: a new anonymous member, alone in the room.
    const fresh = await clientId(pageA);
    expect(fresh).not.toBe(idA);
    await expect.poll(() => members(pageA), { timeout: 5_000 }).toEqual([fresh]);
    await pageA.screenshot({ path: path.join(OUTPUT, "support-chat-reloaded.png"), fullPage: true });
  });

  it("raised no uncaught page errors", () => {
    expect(pageErrors.map((e) => e.message)).toEqual([]);
  });
});

describe("`--demo`: viewers on the tour cards and the demo's support room", () => {
  let gateway: Gateway;
  const pages: Page[] = [];
  const viewing = (page: Page) =>
    page.locator('[data-testid="tour-card"][data-tour-id="tour_paris"] [data-testid="viewers"]').getAttribute("data-count");

  beforeAll(async () => {
    gateway = await startGateway(["--demo", "--demo-interval", "500ms", "--stats-interval", "1s"]);
  }, 60_000);
  afterAll(async () => {
    for (const page of pages) await page.close();
    await gateway?.stop();
  });

  it('shows "N viewing now", following the pages open', async () => {
    for (let i = 0; i < 2; i++) {
      const page = await newPage();
      pages.push(page);
      await page.goto(`http://127.0.0.1:${gateway.port}/`);
      await page.locator('[data-testid="tour-card"][data-tour-id="tour_paris"]').waitFor({ timeout: 10_000 });
    }
    for (const page of pages) await expect.poll(() => viewing(page), { timeout: 6_000 }).toBe("2");
    expect(await pages[0]!.textContent('[data-testid="tour-card"][data-tour-id="tour_paris"] [data-testid="viewers"]')).toBe(
      "2 viewing now",
    );
    await pages[0]!.screenshot({ path: path.join(OUTPUT, "viewers.png"), fullPage: true });
    await pages.pop()!.close();
    await expect.poll(() => viewing(pages[0]!), { timeout: 6_000 }).toBe("1");
  });

  it("joins the demo's support room", async () => {
    const page = pages[0]!;
    await page.click('[data-testid="support-link"]');
    await page.waitForSelector('[data-testid="room-status"][data-joined="true"]', { timeout: 10_000 });
    expect(new URL(page.url()).hash).toBe("#/support/support_demo");
    // The demo's agent posts every 10 ticks (5 s here): in the history or live.
    await expect
      .poll(async () => (await shown(page)).some(([, from]) => from === "support_agent_1"), { timeout: 12_000 })
      .toBe(true);
    await say(page, "Hello from the e2e test");
    await expect
      .poll(async () => (await shown(page)).some(([, , text]) => text === "Hello from the e2e test"), { timeout: 5_000 })
      .toBe(true);
    await page.screenshot({ path: path.join(OUTPUT, "support-demo.png"), fullPage: true });
  });
});
