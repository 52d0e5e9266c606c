// The connections page against the dairy demo: every source and sink of the health report,
// each with its state, and counters from /metrics.

import { test, before, after } from 'node:test';
import { writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { startGateway, openPage, assertOnlyGateway, screenshot, api, eventually, tempDir, cleanup, DESKTOP, startDemo, stopDemo } from './harness.mjs';

// A PLC nobody answers for and a buffered MQTT sink whose broker is down (port 1 is closed).
const BROKEN = `
[gateway]
name = "broken-edge"
data_dir = "data"
[namespace]
enterprise = "acme"
site = "plant-z"
[models.Tank.attributes]
level = { type = "float" }
[[assets]]
path = "tank"
model = "Tank"
source = "tank-plc"
bindings.level = { address = "hr:0:f32" }
[[assets]]
path = "tank-2"
model = "Tank"
source = "sim"
bindings.level = { address = "t" }
[[sources]]
name = "tank-plc"
kind = "modbus"
url = "tcp://127.0.0.1:1"
address_base = 0
period = "1s"
[[sources]]
name = "sim"
kind = "simulator"
period = "100ms"
signals.t = { signal = "constant", value = 1.5 }
[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:1"
buffer = { quota = "8MiB" }
`;

let dir, gateway, browser;
before(async () => ({ dir, gateway, browser } = await startDemo()));
after(() => stopDemo({ dir, gateway, browser }));

test('every source and sink of the health report is shown with its state and counters', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/connections`);
  await page.locator('article.conn').first().waitFor();
  const health = await api(gateway.base, '/api/v1/health');
  assert.ok(health.components.some((c) => c.component === 'source') && health.components.some((c) => c.component === 'sink'), 'the demo has sources and sinks');
  const expected = health.components.map((c) => `${c.component}/${c.name}`).sort();
  // Each card says what health says about the same component (re-read until they agree:
  // a state may change between the page's read and ours).
  await eventually(async () => {
    const shown = await page.locator('article.conn').evaluateAll((cards) => cards.map((c) => `${c.dataset.component}/${c.dataset.name}=${c.dataset.state}`));
    const now = (await api(gateway.base, '/api/v1/health')).components.map((c) => `${c.component}/${c.name}=${c.state}`);
    assert.deepEqual(shown.map((s) => s.split('=')[0]).sort(), expected, 'one card per component');
    return JSON.stringify([...shown].sort()) === JSON.stringify([...now].sort());
  }, 10000, 'the cards show the health states');
  for (const c of health.components) {
    const card = page.locator(`article.conn[data-component="${c.component}"][data-name="${c.name}"]`);
    assert.equal(await card.locator('.kind').textContent(), c.kind);
  }
  // A source's readings from /metrics, with a rate once it refreshed.
  const line1 = page.locator('article.conn[data-component="source"][data-name="line1-plc"]');
  await eventually(async () => /Readings/.test(await line1.locator('dl.metrics').textContent()), 5000, 'readings shown');
  await line1.locator('.rate').first().waitFor({ timeout: 6000 });
  assert.match(await line1.locator('.last-reading').textContent(), /^Last reading \d+ s ago$/);
  await screenshot(page, 'connections-tablet');
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'connections-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('a device that cannot be reached is said in plain words, with the detail and the buffer backlog', async () => {
  const own = tempDir();
  writeFileSync(`${own}/gateway.toml`, BROKEN);
  const broken = await startGateway({ args: ['run', '--listen', '127.0.0.1:0', 'gateway.toml'], cwd: own });
  try {
    const { page, requests, errors } = await openPage(browser);
    await page.goto(`${broken.base}/#/connections`);
    const plc = page.locator('article.conn[data-name="tank-plc"]');
    await eventually(async () => (await plc.getAttribute('data-state')) === 'restarting', 15000, 'the PLC restarting');
    assert.match(await plc.locator('.last-error').textContent(), /Cannot reach the device or server/);
    assert.equal(await plc.locator('.last-reading').textContent(), 'No reading received yet');
    const health = await api(broken.base, '/api/v1/health');
    const h = health.components.find((c) => c.name === 'tank-plc');
    assert.equal(h.error_kind, 'connect');
    assert.ok(h.last_error_at, 'health says when the error happened');
    // The technical text is one tap away.
    await plc.locator('details.detail summary').click();
    assert.match(await plc.locator('.error-text').textContent(), /127\.0\.0\.1:1/);
    // The sink's buffer fills while its broker is away.
    const buffer = page.locator('article.conn[data-name="uns"] .buffer');
    await eventually(async () => /[1-9]\d* records?/.test(await buffer.locator('.backlog').textContent()), 15000, 'a backlog shown');
    assert.match(await page.locator('.summary').textContent(), /need attention/);
    await screenshot(page, 'connections-broken-tablet');
    assert.deepEqual(errors, []);
    assertOnlyGateway(requests, broken.base);
  } finally {
    await broken.stop();
    cleanup(own);
  }
});
