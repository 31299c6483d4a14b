// Playwright harness for Glassbox's end-to-end tests: the real server (started
// here, as root, on a free port with a temporary state dir), Debian's Chromium
// driven by playwright-core (no browser download), real containers.
//
//   node --test frontend/e2e/                 # starts target/debug/glassbox
//   GLASSBOX_BIN=target/release/glassbox node --test frontend/e2e/
//   GLASSBOX_URL=http://127.0.0.1:8080 node --test frontend/e2e/   # a running server
//
// Screenshots go to $GLASSBOX_ARTIFACTS (default: target/e2e-artifacts).
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target');
export const ARTIFACTS = resolve(process.env.GLASSBOX_ARTIFACTS ?? join(TARGET, 'e2e-artifacts'));

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/// The server under test: started here unless GLASSBOX_URL names one.
/// Returns { url, stop(), kill9(), restart() }; stop() ends it with SIGTERM
/// (with `--shutdown stop`: its containers are removed, the warm pool
/// drained) and deletes the state dir; kill9() kills it as a crash would and
/// restart() starts it again on the same port and state dir.
export async function startServer() {
  if (process.env.GLASSBOX_URL) {
    return { url: process.env.GLASSBOX_URL, stop: async () => {} };
  }
  const bin = resolve(process.env.GLASSBOX_BIN ?? join(TARGET, 'debug', 'glassbox'));
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'glassbox-e2e-state-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const log = createWriteStream(join(ARTIFACTS, 'server.log'));
  // Every test's browser comes from 127.0.0.1: lift the per-address rates.
  const rates = ['--sessions-per-minute', '600', '--containers-per-minute', '600',
    '--sockets-per-minute', '6000'];
  const url = `http://127.0.0.1:${port}`;
  let child;
  let exited;
  const spawnServer = async () => {
    child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--shutdown', 'stop', ...rates], {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const me = child;
    exited = new Promise((ok) => me.once('exit', (code, sig) => ok(code ?? sig)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${bin} exited with ${child.exitCode}; see ${ARTIFACTS}/server.log`);
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`${bin} did not answer on ${url}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await spawnServer();
  return {
    url,
    stateDir,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    restart: spawnServer,
    async stop() {
      // A test that killed the server and failed before its restart: start
      // it again, so that its `--shutdown stop` removes the containers.
      if (child.exitCode !== null || child.signalCode !== null) {
        try {
          await spawnServer();
        } catch (e) {
          console.error('could not restart the server to clean up:', e);
        }
      }
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/// Chromium with a fresh profile. Every WebSocket the page opens is kept in
/// `window.__sockets`, so that a test can drop one as a bad network would.
export async function launch(baseUrl, viewport = { width: 1280, height: 800 }) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'glassbox-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl });
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, close };
}

/// The visible text of the active terminal, one string per row.
export async function screenRows(page) {
  return page.$$eval('.term-host:not(.hidden) .xterm-rows > div', (rows) =>
    rows.map((r) => r.textContent.replace(/\u00a0/g, ' ')));
}

/// Type a line into the active terminal.
export async function typeLine(page, text) {
  await page.click('.term-host:not(.hidden) .xterm-screen');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/// Clear the screen and wait for the prompt that follows, on row 2.
///
/// Busybox's line editor asks the terminal where its cursor is at each
/// prompt. At row 1, column 5 the answer (ESC [1;5R) starts like Ctrl+Right
/// (ESC [1;5C); the editor then reads on for up to 15 bytes and drops them
/// all, so a fast typist right after a bare `clear` loses keys. A prompt on
/// row 2 answers ESC [2;5R, which matches no key.
export async function clearScreen(page) {
  await typeLine(page, 'clear; echo cleared');
  await waitForScreen(page, /^cleared\s*$/);
  await waitForScreen(page, /# *$/);
}

/// Wait until some terminal row matches `re`; returns the match.
export async function waitForScreen(page, re, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const rows = await screenRows(page);
    for (const r of rows) {
      const m = r.match(re);
      if (m) return m;
    }
    if (Date.now() > deadline) throw new Error(`terminal never showed ${re}:\n${rows.join('\n')}`);
    await page.waitForTimeout(100);
  }
}

/// Type a command and wait for a row matching `re`; returns the match.
export async function run(page, cmd, re, timeout) {
  await typeLine(page, cmd);
  return waitForScreen(page, re, timeout);
}

/// Wait for the element's text to match `re`; returns the match.
export async function waitForText(page, selector, re, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const text = await page.$$eval(selector, (els) => els.map((e) => e.textContent).join('\n'));
    const m = text.match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`${selector} never showed ${re}; it says:\n${text}`);
    await page.waitForTimeout(100);
  }
}

/// The page's own API calls (same cookie).
export async function api(page, path, method = 'GET') {
  return page.evaluate(async ([p, m]) => {
    const r = await fetch(p, { method: m, headers: { 'x-glassbox-passive': '1' } });
    return { status: r.status, body: r.status === 204 ? null : await r.json() };
  }, [path, method]);
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
