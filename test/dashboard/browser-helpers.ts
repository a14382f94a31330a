/// <reference lib="dom" />
// What the dashboard's browser tests share: Debian's chromium driven by playwright-core, a logged-in
// page that collects script errors and CSP violations, and where screenshots go
// ($BQ_SCREENSHOTS_DIR when set, so `BQ_SCREENSHOTS_DIR=docs npm test` renews the README's; else a
// temporary directory). Without chromium the tests are skipped, saying so.
import { test } from 'uvu';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
import type { TelegramWorld } from '../helpers/telegram.js';
import { ADMIN_TOKEN, READ_TOKEN } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

export const shotsDir = process.env.BQ_SCREENSHOTS_DIR ? path.resolve(process.env.BQ_SCREENSHOTS_DIR) : mkdtempSync(path.join(os.tmpdir(), 'bq-dashboard-shots-'));

/** uvu's test, or test.skip with a warning naming `what` on a machine without chromium. */
export function browserTest(what: string): typeof test {
  if (CHROMIUM) return test;
  console.warn(`${what} SKIPPED: no chromium found (apt-get install chromium, or set CHROMIUM_PATH); .ci/run installs it`);
  return test.skip as unknown as typeof test;
}

/** A page and the script errors and CSP violations its console reported, in order. */
export type TestPage = Page & { problems: string[] };

export function launchBrowser(): Promise<Browser> {
  // --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** A new page of its own (its own cookies), logged in with `token`, on the overview. */
export async function openLoggedIn(browser: Browser, serverUrl: string, token: string): Promise<TestPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = (await context.newPage()) as TestPage;
  page.problems = [];
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(m.text()); });
  page.on('pageerror', (e) => page.problems.push(String(e)));
  // Every confirmation is accepted: the operator said yes.
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${serverUrl}/`);
  if (new URL(page.url()).pathname !== '/login') throw new Error(`a visit without a session should lead to /login, got ${page.url()}`);
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${serverUrl}/`), page.click('#login button')]);
  return page;
}

/** An admin server on the world's queue with both dashboard tokens, and a browser, for `body`. */
export async function withBrowser(world: TelegramWorld, body: (server: AdminServer, open: (token: string) => Promise<TestPage>) => Promise<void>): Promise<void> {
  const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN, dashboard: { readOnlyToken: READ_TOKEN } });
  let browser: Browser | null = null;
  try {
    browser = await launchBrowser();
    const b = browser;
    await body(server, (token) => openLoggedIn(b, server.url, token));
  } finally {
    await browser?.close();
    await server.close();
  }
}
