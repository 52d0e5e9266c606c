// The connections page against the dairy demo: every source and sink of the health report,
// each with its state, and counters from /metrics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, launchBrowser, openPage, assertOnlyGateway, screenshot, api, eventually, tempDir, cleanup, DESKTOP } from './harness.mjs';

let dir, gateway, browser;
before(async () => {
  dir = tempDir();
  gateway = await startGateway({ dataDir: `${dir}/data` });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
  cleanup(dir);
});

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
  await screenshot(page, 'connections-tablet');
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'connections-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});
