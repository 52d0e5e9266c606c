// What every browser test of the UI uses: its own gateway (the dairy demo by default) on a
// free port with its own data directory, Debian's Chromium driven by playwright-core, a
// record of every request the page makes (only the gateway may be asked), and screenshots
// under target/ui-screenshots/ for people to look at.
//
// Environment: BACKPLANE_BIN (the gateway binary, set by crates/backplane/tests/ui.rs),
// BACKPLANE_CHROMIUM (default /usr/bin/chromium).

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = join(ROOT, 'target', 'ui-screenshots');

export const TABLET = { width: 1280, height: 800 }; // a 10-inch tablet, landscape
export const DESKTOP = { width: 1920, height: 1080 };

/** A temporary directory removed by `cleanup`. */
export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'backplane-ui-'));
}

/**
 * Starts `backplane ARGS` (default: the demo on a free port with `dataDir`) and resolves
 * when it prints `API listening on URL`. `listen` reuses an address (a restart).
 */
export async function startGateway({ dataDir, listen = '127.0.0.1:0', args, cwd = ROOT } = {}) {
  const bin = process.env.BACKPLANE_BIN;
  assert.ok(bin, 'BACKPLANE_BIN must name the backplane binary');
  const argv = args ?? ['demo', '--listen', listen, '--data-dir', dataDir];
  const child = spawn(bin, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start in 60 s: ${stderr}`)), 60000);
    child.once('exit', (code) => reject(new Error(`the gateway exited (${code}): ${stderr}`)));
    lines.on('line', (line) => {
      const m = line.match(/^API listening on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    });
  });
  lines.on('line', () => {}); // keep draining stdout
  return {
    base,
    address: base.replace(/^https?:\/\//, ''),
    process: child,
    /** Stops it (SIGTERM, then SIGKILL after 10 s) and waits for the exit. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Debian's Chromium, headless. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.BACKPLANE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Tests run as root in CI containers, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

/**
 * A page at `viewport` whose every request is recorded in `requests` (URLs), including
 * those of workers, so a test can prove nothing left the gateway.
 */
export async function openPage(browser, viewport = TABLET) {
  const context = await browser.newContext({ viewport });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, requests, errors };
}

/** Fails when any recorded request went somewhere other than `base` (data: URLs aside). */
export function assertOnlyGateway(requests, base) {
  const origin = new URL(base).origin;
  const elsewhere = requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
  assert.deepEqual(elsewhere, [], `requests to hosts other than the gateway ${origin}`);
  assert.ok(requests.length > 0, 'no request was recorded at all');
}

/** Saves a full-page screenshot as target/ui-screenshots/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** GET `base + path` as JSON (the API, as a test's second opinion on what the page shows). */
export async function api(base, path, init) {
  const r = await fetch(base + path, init);
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function eventually(check, ms = 10000, what = 'the condition') {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`${what} did not hold within ${ms} ms${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Removes a temporary directory. */
export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/** The usual start of a test file: a temporary directory, the demo in it, a browser. */
export async function startDemo() {
  const dir = tempDir();
  const gateway = await startGateway({ dataDir: `${dir}/data` });
  return { dir, gateway, browser: await launchBrowser() };
}

/** Undoes `startDemo` (whatever gateway the file ended with). */
export async function stopDemo({ dir, gateway, browser }) {
  await browser?.close();
  await gateway?.stop();
  if (dir) cleanup(dir);
}
