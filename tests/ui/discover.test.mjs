// The discover page: scan the Modbus filler simulator from the UI, tick two registers, and
// the TOML to paste has bindings for exactly those.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { startGateway, launchBrowser, openPage, assertOnlyGateway, screenshot, tempDir, cleanup, DESKTOP } from './harness.mjs';

let dir, gateway, browser, simulator, device;
before(async () => {
  dir = tempDir();
  // Vendor A's filler on a free port (docs/connectors/modbus.md: hr:100 state, hr:101
  // speed, hr:102-103 good count as u32 CDAB, ...).
  simulator = spawn(process.env.BACKPLANE_BIN, ['simulate', 'modbus-filler', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  device = await new Promise((resolve, reject) => {
    simulator.once('exit', (code) => reject(new Error(`the simulator exited (${code})`)));
    createInterface({ input: simulator.stdout }).on('line', (line) => {
      const m = line.match(/listening on (tcp:\/\/\S+?);/);
      if (m) resolve(m[1]);
    });
  });
  gateway = await startGateway({ dataDir: `${dir}/data` });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
  simulator?.kill('SIGTERM');
  cleanup(dir);
});

const bindings = (toml) => [...toml.matchAll(/^bindings\.(\w+) = \{ address = "([^"]+)" \}/gm)].map((m) => [m[1], m[2]]);

test('a scan of the filler lists its registers and ticking two gives bindings for exactly those', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/discover`);
  await page.locator('input.url').fill(device);
  await page.locator('input[name="range"]').fill('hr:100-107');
  await page.locator('button', { hasText: 'Scan' }).click();
  const rows = page.locator('.signals tbody tr');
  await rows.first().waitFor({ timeout: 20000 });
  const addresses = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.address));
  assert.deepEqual(addresses, ['hr:100', 'hr:101', 'hr:102', 'hr:103', 'hr:104', 'hr:105', 'hr:106', 'hr:107']);
  const output = page.locator('textarea.toml');
  assert.equal(await output.inputValue(), '', 'nothing ticked, nothing to paste');

  await page.locator('tr[data-address="hr:100"] input.tick').check();
  await page.locator('tr[data-address="hr:102"] input.tick').check();
  // The good count is a u32 in CDAB order: choosing that decoding changes its binding.
  const decoding = page.locator('tr[data-address="hr:102"] select.decoding');
  const cdab = await decoding.locator('option', { hasText: 'u32 CDAB' }).getAttribute('value');
  await decoding.selectOption(cdab);
  const toml = await output.inputValue();
  assert.deepEqual(bindings(toml), [['hr_100', 'hr:100'], ['hr_102', 'hr:102:u32:CDAB']], toml);
  assert.match(toml, new RegExp(`^url = "${device}"$`, 'm'), 'the source reads the scanned device');
  assert.match(toml, /^hr_102 = \{ type = "uint" \}$/m, 'the model attribute has the decoding\'s type');
  assert.doesNotMatch(toml, /hr_101/);
  // Unticking takes a binding out again.
  await page.locator('tr[data-address="hr:100"] input.tick').uncheck();
  assert.deepEqual(bindings(await output.inputValue()).map(([n]) => n), ['hr_102']);
  await page.locator('tr[data-address="hr:100"] input.tick').check();
  await page.locator('tr[data-address="hr:101"] input.tick').check();
  await page.locator('tr[data-address="hr:102"] input.tick').uncheck();
  assert.deepEqual(bindings(await output.inputValue()).map(([n]) => n), ['hr_100', 'hr_101']);
  await screenshot(page, 'discover-tablet');
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'discover-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('a device that does not answer gives a clear error on the page', async () => {
  const { page, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/discover`);
  await page.locator('input.url').fill('tcp://127.0.0.1:1');
  await page.locator('button', { hasText: 'Scan' }).click();
  await page.locator('.notice.error').waitFor({ timeout: 20000 });
  assert.match(await page.locator('.notice.error').textContent(), /cannot connect to tcp:\/\/127\.0\.0\.1:1/);
  assert.deepEqual(errors, []);
});
