// A visitor's tour of Glassbox, end to end: the real server, real containers,
// Chromium. The steps run in order on one page, as a visitor would.
//
//   node --test frontend/e2e/        (as root; see harness.mjs)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, clearScreen, launch, run, screenRows, shot, startServer, typeLine, waitForScreen, waitForText,
} from './harness.mjs';

const PROMPT = /# *$/;
let server;
let browser;
let page;
/// The container the visitor started with.
let main;

before(async () => {
  server = await startServer();
  browser = await launch(server.url);
  page = browser.page;
  page.on('pageerror', (e) => console.error('page error:', e));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/// The one container of the session that is named `name` (or the first).
async function containerInfo(name) {
  const { status, body } = await api(page, '/api/v1/containers');
  assert.equal(status, 200);
  return name ? body.find((c) => c.name === name) : body[0];
}

async function waitForPrompt(timeout = 10_000) {
  return waitForScreen(page, PROMPT, timeout);
}

test('start a playground: one button, a shell prompt', async () => {
  await page.goto(server.url);
  await page.waitForSelector('[data-testid=start]:not([disabled])');
  await shot(page, '00-start-light');
  const t0 = Date.now();
  await page.click('[data-testid=start]');
  await page.waitForSelector('.term-host:not(.hidden) .xterm-rows');
  await waitForPrompt();
  console.log(`# start → prompt: ${Date.now() - t0} ms`);
  main = await containerInfo();
  assert.equal(main.state, 'running');
  await waitForText(page, '[data-testid=session-timer]', /\d+:\d\d/);
  await waitForText(page, '.containers', /running/);
});

test('hostname and echo $$ show the container, not the host', async () => {
  await typeLine(page, 'hostname');
  await waitForScreen(page, new RegExp(`^${main.hostname}\\s*$`));
  const [, pid] = await run(page, 'echo pid=$$', /^pid=(\d+)\s*$/);
  const { body: procs } = await api(page, `/api/v1/containers/${main.id}/processes`);
  const sh = procs.find((p) => p.pid === Number(pid));
  assert.ok(sh, `no process ${pid} in ${JSON.stringify(procs)}`);
  assert.match(sh.cmd, /sh/);
  assert.notEqual(sh.host_pid, sh.pid, 'the host sees another PID');
  await shot(page, '01-shell');
});

test('the processes view maps PID 1 to its host PID', async () => {
  await page.click('button[data-tab=processes]');
  const [, hostPid] = await waitForText(page, '[data-testid=pid1]', /PID 1 here is PID (\d+) on the host/);
  assert.equal(Number(hostPid), main.host_pid);
  const hosts = await page.$$eval('.panel td.host', (tds) => tds.map((td) => td.textContent.trim()));
  assert.ok(hosts.includes(hostPid), `${hostPid} not in the table's host PIDs ${hosts}`);
});

test('namespaces, cgroup and runtime chain panels show live data', async () => {
  await page.click('button[data-tab=namespaces]');
  await waitForText(page, '.panel', /isolated/);
  const nsText = await page.textContent('.panel');
  assert.match(nsText, new RegExp(String(main.namespaces.pid.inode)));
  await page.click('button[data-tab=cgroup]');
  await waitForText(page, '.panel', /pids\.current/);
  await waitForText(page, '.panel', new RegExp(main.cgroup.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await page.click('button[data-tab=chain]');
  await waitForText(page, '.panel', new RegExp(`host PID ${main.host_pid}(?!\\d)`));
  await shot(page, '02-chain');
});

test('the CPU chart moves under yes > /dev/null', async () => {
  await typeLine(page, 'yes > /dev/null &');
  const [, cpu] = await waitForText(page, '[data-testid=chart-cpu] .chart-value', /(\d+(?:\.\d+)?)\s*%/, 15_000)
    .then(async () => {
      // Wait for a reading well above idle (about 0 %; a busy host gives
      // yes less than its 1 CPU).
      const deadline = Date.now() + 15_000;
      for (;;) {
        const v = await page.textContent('[data-testid=chart-cpu] .chart-value');
        const m = v.match(/(\d+(?:\.\d+)?)\s*%/);
        if (m && Number(m[1]) >= 15) return m;
        if (Date.now() > deadline) throw new Error(`CPU chart stays at ${v}`);
        await page.waitForTimeout(200);
      }
    });
  console.log(`# CPU under yes: ${cpu}%`);
  await shot(page, '03-cpu');
  await typeLine(page, 'kill %1');
});

test('a yes flood on the terminal does not freeze the tab', async () => {
  await typeLine(page, 'yes glassbox | head -c 30000000');
  // The page stays responsive while 30 MB stream through.
  const t0 = Date.now();
  const answered = await page.evaluate(() => new Promise((ok) => setTimeout(() => ok(true), 50)));
  assert.ok(answered && Date.now() - t0 < 3_000, 'the page did not answer during the flood');
  await page.click('button[data-tab=namespaces]');
  await waitForText(page, '.panel', /isolated/, 5_000);
  // The seed's "root inside is not root on the host", live.
  await waitForText(page, '[data-testid=idmap]', /root here is uid [1-9]\d+ on the host/, 5_000);
  await waitForScreen(page, PROMPT, 60_000);
  const [, n] = await run(page, 'echo done-$((2+3))', /^done-(\d)/, 15_000);
  assert.equal(n, '5');
});

test('a dropped socket reconnects and replays what was missed', async () => {
  await clearScreen(page);
  // Drop every terminal socket, as a bad network would, while output is due.
  await typeLine(page, 'sleep 1; echo after-the-drop');
  const dropped = await page.evaluate(() => {
    let n = 0;
    for (const ws of window.__sockets) {
      if (ws.url.includes('/tty') && ws.readyState === 1) {
        ws.close();
        n += 1;
      }
    }
    return n;
  });
  assert.ok(dropped >= 1);
  await waitForScreen(page, /^after-the-drop/, 15_000);
  await waitForText(page, '.term-card:not(.hidden)', /live/);
  const [, v] = await run(page, 'echo still-$((40+2))', /^still-(\d+)/);
  assert.equal(v, '42');
});

test('kill -9 of the server: the terminal reconnects by itself to the same shell', async () => {
  await clearScreen(page);
  const [, before] = await run(page, 'echo shell=$$', /^shell=(\d+)\s*$/);
  // Output that the shell makes while the server is down. The kill waits
  // until the shell runs the line: a key pressed just before it could still
  // be on its way through the server, and be lost with it.
  await typeLine(page, 'echo run-$((2*2)); sleep 2; echo while-$((3*3))-down');
  await waitForScreen(page, /^run-4/);
  await server.kill9();
  await new Promise((r) => setTimeout(r, 3000));
  await server.restart();
  // No reload, no click: the page's own reconnect finds the same shell, and
  // the replay brings what was printed meanwhile (once).
  await waitForScreen(page, /^while-9-down/, 30_000);
  await waitForText(page, '.term-card', /live/, 30_000);
  const [, after] = await run(page, 'echo shell=$$', /^shell=(\d+)\s*$/);
  assert.equal(after, before, 'the same shell');
  const rows = (await screenRows(page)).filter((r) => /^while-9-down/.test(r));
  assert.equal(rows.length, 1, 'replayed exactly once');
  const { status } = await api(page, '/api/v1/sessions/current');
  assert.equal(status, 200, 'the session cookie still works');
});

test('resize reaches the container', async () => {
  const [, rows1, cols1] = await run(page, 'stty size | sed s/^/size=/', /^size=(\d+) (\d+)/);
  await page.setViewportSize({ width: 1100, height: 700 });
  await page.waitForTimeout(500);
  await clearScreen(page);
  const [, rows2, cols2] = await run(page, 'stty size | sed s/^/size=/', /^size=(\d+) (\d+)/);
  assert.ok(rows1 !== rows2 || cols1 !== cols2, `size stayed ${rows1}x${cols1}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(300);
});

test('Ctrl+Shift+V and right-click paste into the terminal', async () => {
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((3*3))'));
  await page.click('.term-host:not(.hidden) .xterm-screen');
  await page.keyboard.press('Control+Shift+V');
  await page.waitForTimeout(300);
  await page.keyboard.press('Enter');
  await waitForScreen(page, /^pasted-9/);
  await page.evaluate(() => navigator.clipboard.writeText('echo right-$((4*4))'));
  await page.click('.term-host:not(.hidden) .xterm-screen', { button: 'right' });
  await page.waitForTimeout(300);
  await page.keyboard.press('Enter');
  await waitForScreen(page, /^right-16/);
});

test('colours, Ctrl+Shift+C, vi and top work in the terminal', async () => {
  // Colours: SGR 31 reaches xterm as red (its DOM renderer's xterm-fg-1).
  await run(page, "printf '\\033[31mred-%s\\033[0m\\n' text", /^red-text/);
  const red = await page.$$eval('.term-host:not(.hidden) .xterm-rows span.xterm-fg-1',
    (spans) => spans.map((e) => e.textContent).join(''));
  assert.match(red, /red-text/);
  // Ctrl+Shift+C copies the selection (a double-clicked word).
  await run(page, 'echo copy-$((6*7))-me', /^copy-42-me/);
  const rowBox = await page.$$eval('.term-host:not(.hidden) .xterm-rows > div', (rows) => {
    const r = rows.find((d) => d.textContent.startsWith('copy-42-me'));
    const b = r.getBoundingClientRect();
    return { x: b.left, y: b.top + b.height / 2 };
  });
  await page.evaluate(() => navigator.clipboard.writeText('nothing yet'));
  await page.mouse.dblclick(rowBox.x + 12, rowBox.y);
  await page.keyboard.press('Control+Shift+C');
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'copy-42-me');
  // vi: full-screen, insert, :wq, and the file is written.
  await typeLine(page, 'vi /tmp/from-vi');
  await waitForScreen(page, /^~\s*$/);
  await page.keyboard.type('ihello from vi');
  await page.keyboard.press('Escape');
  // Busybox vi reads ESC followed within 50 ms by more keys as one (unknown,
  // dropped) escape sequence; a person pauses here anyway.
  await page.waitForTimeout(300);
  await page.keyboard.type(':wq');
  await page.keyboard.press('Enter');
  await waitForPrompt();
  await run(page, 'cat /tmp/from-vi | sed s/^/file:/', /^file:hello from vi/);
  // top: a full-screen refresh with the process table, q quits.
  await typeLine(page, 'top');
  await waitForScreen(page, /^\s*PID\s+PPID\s+USER/);
  await waitForScreen(page, /^Mem:/);
  await shot(page, '03b-top');
  await page.keyboard.press('q');
  await clearScreen(page);
});

test('an exec tab joins the same container', async () => {
  await page.click('.term-card:not(.hidden) [data-testid=exec]');
  await page.waitForSelector('.term-card:not(.hidden) .ttab[data-serial="1"]');
  await page.waitForSelector('.term-host[data-kind=exec]:not(.hidden) .xterm-rows');
  await waitForPrompt();
  await typeLine(page, 'hostname');
  await waitForScreen(page, new RegExp(`^${main.hostname}\\s*$`));
  // Both shells, the main one and this one, are in the container.
  const [, count] = await run(page, 'ps | grep -c "[s]h$" | sed s/^/shells=/', /^shells=(\d+)/);
  assert.ok(Number(count) >= 2, `${count} shells`);
  await run(page, 'echo kept-$((1+1))', /^kept-2/);
  await shot(page, '04-exec');
  await page.click('.term-card:not(.hidden) .ttab[data-serial="0"]');
});

test('rm /bin/sh lands in the filesystem view as a deletion', async () => {
  await page.click('button[data-tab=filesystem]');
  await typeLine(page, 'rm /bin/sh; echo hi > /root/note');
  const diff = '[data-testid=diff]';
  await page.waitForSelector(diff, { timeout: 10_000 });
  await waitForText(page, `${diff} .change.deleted, ${diff} li`, /\/bin\/sh/);
  const row = await page.$$eval(`${diff} li`, (lis) =>
    lis.map((l) => ({ text: l.textContent, cls: l.className })).find((l) => l.text.includes('/bin/sh')));
  assert.match(row.cls + row.text, /delet/i);
  await waitForText(page, diff, /\/root\/note/);
  await shot(page, '05-filesystem');
});

test('create a container with limits from the form', async () => {
  await page.click('[data-testid=new-container]');
  const form = 'form.create';
  await page.waitForSelector(form);
  // The operator's defaults are filled in.
  const mem = await page.inputValue(`${form} label:has-text("memory") input`);
  assert.match(mem, /^\d+m$/);
  await page.fill(`${form} label:has-text("name") input`, 'lab');
  await page.fill(`${form} label:has-text("memory") input`, '48m');
  await page.fill(`${form} label:has-text("pids") input`, '40');
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector('.ctr:has-text("lab")');
  await waitForText(page, '.ctr.selected', /lab/);
  await page.waitForSelector('.term-host:not(.hidden) .xterm-rows');
  await waitForPrompt();
  const lab = await containerInfo('lab');
  assert.equal(lab.limits.memory_bytes, 48 << 20);
  assert.equal(lab.limits.pids, 40);
  await waitForText(page, '.ctr.selected', /48 MiB/);
  // Back to the first container: its exec tab and that shell are still there.
  await page.click(`.ctr[data-id="${main.id}"]`);
  const card = `.term-card[data-container="${main.id}"]`;
  await page.waitForSelector(`${card}:not(.hidden)`);
  await page.click(`${card} .ttab[data-serial="1"]`);
  await waitForScreen(page, /^kept-2/);
  await waitForText(page, `${card} .ttab[data-serial="1"]`, /exec 1/);
  assert.equal(await page.getAttribute(`${card} .ttab[data-serial="1"]`, 'title'), 'live');
  await page.click(`${card} .ttab[data-serial="0"]`);
  await page.click('.ctr:has-text("lab")');
  await page.waitForSelector('.term-card:not(.hidden)[data-container]:not([data-container="' + main.id + '"])');
});

test('a memory hog gets OOM-killed and the feed says so', async () => {
  await typeLine(page, 'tail /dev/zero');
  await waitForText(page, '[data-testid=events]', /a process was killed: memory limit 48 MiB reached/, 30_000);
  await waitForPrompt(15_000);
  await shot(page, '06-oom');
});

test('a fork bomb hits the pids limit and the feed says so', async () => {
  await typeLine(page, 'f(){ f|f& };f');
  await waitForText(page, '[data-testid=events]', /fork refused: pids limit 40 reached/, 30_000);
  await waitForText(page, '[data-testid=chart-pids]', /40/);
  await shot(page, '07-fork-bomb');
});

test('restart makes a fresh container with the same name and limits', async () => {
  const before = await containerInfo('lab');
  await page.click('.ctr.selected [data-testid=restart]');
  await page.waitForFunction((old) => {
    const sel = document.querySelector('.ctr.selected');
    return sel && sel.dataset.id !== old && sel.textContent.includes('lab');
  }, before.id, { timeout: 20_000 });
  await page.waitForSelector('.term-host:not(.hidden) .xterm-rows');
  await waitForPrompt(15_000);
  const after = await containerInfo('lab');
  assert.notEqual(after.id, before.id);
  assert.equal(after.limits.pids, 40);
  const [, n] = await run(page, 'ls /proc | grep -c "^[0-9]" | sed s/^/procs=/', /^procs=(\d+)/);
  assert.ok(Number(n) < 10, `${n} processes after a restart`);
});

test('stop shows the exit, delete removes the container', async () => {
  await page.click('.ctr.selected [data-testid=stop]');
  await waitForText(page, '.ctr.selected', /exited \(137\)/, 15_000);
  await waitForText(page, '[data-testid=events]', /lab exited with code 137/);
  await page.click('.ctr.selected [data-testid=delete]');
  await page.waitForSelector('.ctr:has-text("lab")', { state: 'detached', timeout: 10_000 });
  await waitForText(page, '[data-testid=events]', /lab was removed/);
  assert.equal(await containerInfo('lab'), undefined);
});

test('the session timer extends', async () => {
  const t = await page.textContent('[data-testid=session-timer]');
  assert.match(t, /\d+:\d\d/);
  const r = await page.evaluate(async () => {
    const r = await fetch('/api/v1/sessions/current/extend', { method: 'POST' });
    return r.json();
  });
  assert.ok(r.idle_expires_at <= r.expires_at);
  await page.click('[data-testid=session-timer] button');
  await page.waitForTimeout(300);
  assert.equal(await page.$('.banner.bad'), null, 'extending showed an error');
});

test('screenshots: dark theme, a narrow window', async () => {
  await page.click(`.ctr[data-id="${main.id}"]`);
  await page.click('button[data-tab=processes]');
  await waitForText(page, '[data-testid=pid1]', /PID 1 here/);
  await shot(page, '08-light');
  await page.click('button[aria-label="Switch light / dark theme"]');
  await page.waitForTimeout(400);
  await shot(page, '09-dark');
  await page.setViewportSize({ width: 420, height: 860 });
  await page.waitForTimeout(400);
  await shot(page, '10-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click('button[aria-label="Switch light / dark theme"]');
});

test('delete the container', async () => {
  await page.click(`.ctr[data-id="${main.id}"] [data-testid=delete]`);
  await page.waitForSelector(`.ctr[data-id="${main.id}"]`, { state: 'detached', timeout: 10_000 });
  const { body } = await api(page, '/api/v1/containers');
  assert.deepEqual(body, []);
  await waitForText(page, '.containers', /No containers in this session/);
  await shot(page, '11-deleted');
  const rows = await screenRows(page);
  assert.equal(rows.length, 0, 'no terminal is left');
});
