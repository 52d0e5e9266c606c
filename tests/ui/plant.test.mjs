// The plant tree, the asset page's live values and a value's lineage, in a real browser
// against the dairy demo.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, assertOnlyGateway, screenshot, api, eventually, TABLET, DESKTOP, startDemo, stopDemo } from './harness.mjs';

const FILLER_1 = 'acme-dairy/plant-a/packaging/line-1/filler';
const FILLER_2 = 'acme-dairy/plant-a/packaging/line-2/filler';

let dir, gateway, browser;
before(async () => ({ dir, gateway, browser } = await startDemo()));
after(() => stopDemo({ dir, gateway, browser }));

test('the tree shows the plant areas, lines and both fillers, and search narrows it', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/`);
  const tree = page.locator('.tree');
  await tree.locator(`a[data-path="${FILLER_2}"]`).waitFor();
  const paths = await tree.locator('a.node').evaluateAll((nodes) => nodes.map((n) => n.dataset.path));
  const expected = (await api(gateway.base, '/api/v1/assets')).flatMap(function walk(a) {
    return [a.path, ...(a.children || []).flatMap(walk)];
  });
  assert.deepEqual([...paths].sort(), [...expected].sort(), 'every asset of the API is in the tree');
  for (const p of ['acme-dairy/plant-a/packaging', 'acme-dairy/plant-a/packaging/line-1', 'acme-dairy/plant-a/packaging/line-2', FILLER_1, FILLER_2]) {
    assert.ok(paths.includes(p), `${p} in the tree`);
  }
  // The fillers' machine states from the production stage.
  await page.locator(`a[data-path="${FILLER_1}"] .state:not([hidden])`).waitFor();
  await page.locator('input.search').fill('line-2 filler');
  assert.equal(await tree.locator(`a[data-path="${FILLER_1}"]`).isVisible(), false, 'line 1 filler hidden by the search');
  assert.equal(await tree.locator(`a[data-path="${FILLER_2}"]`).isVisible(), true, 'line 2 filler still shown');
  await page.locator('input.search').fill('');
  await screenshot(page, 'plant-tablet');
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'plant-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test("a filler's speed changes on screen within 2 s without a reload", async () => {
  // The demo's fillers start idle (speed 0) and run after a few seconds; then the speed
  // changes on every poll.
  await eventually(async () => (await api(gateway.base, `/api/v1/assets/${FILLER_1}`)).attributes.state.value === 'running', 30000, 'filler 1 running');
  const { page, requests, errors } = await openPage(browser);
  let loads = 0;
  page.on('load', () => loads++);
  await page.goto(`${gateway.base}/#/asset/${FILLER_1}`);
  const speed = page.locator('tr[data-attribute="speed"] button.value');
  await page.locator('.live.on').waitFor();
  // Wait for the gateway to hold a speed other than the one on screen (a poll may repeat a
  // value), then the screen must show that new number within 2 s, without a reload.
  const shown = await speed.textContent();
  const fresh = await eventually(async () => {
    const value = (await api(gateway.base, `/api/v1/assets/${FILLER_1}`)).attributes.speed.value;
    return String(value) !== shown && String(value);
  }, 15000, 'a new speed at the gateway');
  await page.waitForFunction((want) => document.querySelector('tr[data-attribute="speed"] button.value').textContent === want, fresh, { timeout: 2000 });
  assert.equal(loads, 1, 'no reload');
  const unit = await page.locator('tr[data-attribute="speed"] td:nth-child(3)').textContent();
  assert.equal(unit, 'bottle/min');
  // A context change on the line shows in the filler's context card, also without a reload.
  await fetch(`${gateway.base}/api/v1/context/acme-dairy/plant-a/packaging/line-1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ batch: 'B-UI-1' }),
  });
  await page.locator('.context dd[data-field="batch"]', { hasText: 'B-UI-1' }).waitFor({ timeout: 2000 });
  assert.equal(loads, 1, 'no reload');
  await screenshot(page, 'asset-tablet');
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'asset-desktop');
  await page.setViewportSize(TABLET);
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('the lineage panel shows the scale, unit-conversion and rounding steps of a converted attribute', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/asset/${FILLER_1}`);
  await page.locator('tr[data-attribute="product_temperature"] button.value').click();
  const dialog = page.locator('dialog.lineage');
  await dialog.locator('table.steps tbody tr').first().waitFor();
  const ops = await dialog.locator('table.steps tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.op));
  assert.ok(ops.includes('scale'), `a scale step: ${ops}`);
  assert.ok(ops.includes('convert'), `a convert step: ${ops}`);
  const convert = await dialog.locator('tr[data-op="convert"] td:nth-child(2)').textContent();
  assert.match(convert, /degF → degC/);
  // The model declares 2 decimals: the last step rounds the converted value.
  assert.equal(ops.at(-1), 'round', `rounded last: ${ops}`);
  assert.equal(await dialog.locator('tr[data-op="round"] td:nth-child(2)').textContent(), 'round to 2 decimals');
  // The panel says what the API says about the same tag.
  const lineage = await api(gateway.base, `/api/v1/lineage/${FILLER_1}/product_temperature`);
  assert.match(await dialog.locator('dl.facts').textContent(), new RegExp(lineage.source.address));
  await screenshot(page, 'lineage-tablet');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});
