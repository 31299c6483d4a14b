// Playwright harness for Glassbox's end-to-end tests: Debian's Chromium,
// driven by playwright-core (no browser download), against a running server.
//
//   GLASSBOX_URL=http://127.0.0.1:8080 node --test frontend/e2e/
//
// Screenshots go to $GLASSBOX_ARTIFACTS (default: artifacts/e2e).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE_URL = process.env.GLASSBOX_URL ?? 'http://127.0.0.1:8080';
export const ARTIFACTS = process.env.GLASSBOX_ARTIFACTS ?? 'artifacts/e2e';

export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'glassbox-e2e-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE_URL });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/// The visible text of the active terminal, one string per row.
export async function screenRows(page) {
  return page.$$eval('.term-host:not(.hidden) .xterm-rows > div', (rows) =>
    rows.map((r) => r.textContent.replace(/\u00a0/g, ' ')));
}

/// Type a line into the active terminal.
export async function typeLine(page, text) {
  await page.click('.term-host:not(.hidden) .xterm');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/// Wait until some terminal row matches `re`.
export async function waitForScreen(page, re, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const rows = await screenRows(page);
    const hit = rows.find((r) => re.test(r));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`terminal never showed ${re}:\n${rows.join('\n')}`);
    await page.waitForTimeout(100);
  }
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}
