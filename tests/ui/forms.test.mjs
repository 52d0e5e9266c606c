// Operator forms in a real browser against the dairy demo: the gateway's field errors next
// to the fields, a valid lab check recorded and in history, and an entry made while the
// gateway is down kept on the tablet and recorded exactly once, at its own time, after a
// restart.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, openPage, assertOnlyGateway, screenshot, api, eventually, TABLET, DESKTOP, startDemo, stopDemo } from './harness.mjs';

const RECEPTION = 'acme-dairy/plant-a/reception';
const SILO_1 = `${RECEPTION}/silo-1`;
const ENTRIES = '/api/v1/forms/milk-lab/entries';

let dir, gateway, browser;
before(async () => ({ dir, gateway, browser } = await startDemo()));
after(() => stopDemo({ dir, gateway, browser }));

/** Fills the lab form; `values` by field name (choices by their text). */
async function fillLab(page, values) {
  await page.selectOption('#form-asset', SILO_1);
  for (const [name, value] of Object.entries(values)) {
    if (name === 'antibiotics') await page.locator(`.field[data-field="antibiotics"] label.choice:has-text("${value}")`).click();
    else await page.fill(`#field-${name}`, String(value));
  }
}

const entries = () => api(gateway.base, `${ENTRIES}?limit=1000`);

test('the lab form lists only reception assets, shows the gateway field errors at the fields, and records a valid entry once', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/forms`);
  await page.locator('a.form-card[data-form="filler-startup"]').waitFor();
  await screenshot(page, 'forms-list-tablet');
  await page.locator('a.form-card[data-form="milk-lab"]').click();
  await page.locator('#field-fat').waitFor();

  // Touch targets and keypads.
  assert.equal(await page.getAttribute('#field-fat', 'inputmode'), 'decimal');
  for (const selector of ['#field-fat', '#form-asset', '#field-tanker', '.field[data-field="antibiotics"] label.choice span', 'button.submit']) {
    const box = await page.locator(selector).first().boundingBox();
    assert.ok(box.height >= 44 && box.width >= 44, `${selector} is ${box.width}×${box.height}`);
  }
  // The picker offers the form's assets (the reception and below) and nothing else.
  const offered = (await page.locator('#form-asset option').evaluateAll((os) => os.map((o) => o.value))).filter(Boolean);
  assert.ok(offered.includes(SILO_1), `silo-1 offered: ${offered}`);
  assert.ok(offered.every((p) => p === RECEPTION || p.startsWith(`${RECEPTION}/`)), `only reception assets: ${offered}`);

  // Invalid: fat out of range, protein not a number. The gateway's messages at the fields.
  const before = (await entries()).length;
  await fillLab(page, { tanker: 'AB-123', fat: 9, protein: 'high', temperature: 3.9, antibiotics: 'pass' });
  await page.locator('button.submit').click();
  const fatError = page.locator('.field[data-field="fat"] .field-error');
  await fatError.waitFor();
  assert.match(await fatError.textContent(), /`fat` is 9 %, outside the range 2\.5 to 6 %/);
  assert.match(await page.locator('.field[data-field="protein"] .field-error').textContent(), /`protein` must be a number in %, found a string/);
  assert.equal(await page.locator('.field[data-field="temperature"] .field-error').isVisible(), false, 'no error at a good field');
  assert.equal((await entries()).length, before, 'nothing recorded');
  await screenshot(page, 'forms-tablet');

  // Fixed: recorded, listed below the form, in the entries API and in history.
  await page.fill('#field-fat', '4.1');
  await page.fill('#field-protein', '3,4'); // a decimal comma from a tablet keypad
  await page.locator('button.submit').click();
  await page.locator('.notice.ok').waitFor();
  const list = await entries();
  assert.equal(list.length, before + 1);
  const entry = list[0];
  assert.equal(entry.asset, SILO_1);
  assert.deepEqual(entry.values, { tanker: 'AB-123', fat: 4.1, protein: 3.4, temperature: 3.9, antibiotics: 'pass' });
  assert.match(entry.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  await page.locator(`table.entries tr[data-entry="${entry.entry}"]`).waitFor();
  assert.equal(await page.locator('.field[data-field="fat"] .field-error').isVisible(), false, 'errors cleared');
  const history = await eventually(async () => {
    const h = await api(gateway.base, `/api/v1/history/events?asset=${SILO_1}&kind=operator_entry&from=now-1h`);
    return h.events.find((e) => e.entry === entry.entry);
  }, 15000, 'the entry in history');
  assert.equal(history.form, 'milk-lab');
  assert.equal(Date.parse(history.time), Date.parse(entry.time));
  await page.setViewportSize(DESKTOP);
  await screenshot(page, 'forms-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('an entry made while the gateway is down waits on the tablet and is recorded once, at its own time, after a restart', async () => {
  const { page, requests, errors } = await openPage(browser, TABLET);
  await page.goto(`${gateway.base}/#/forms/milk-lab`);
  await page.locator('#field-fat').waitFor();
  await gateway.stop();

  await fillLab(page, { tanker: 'OFF-42', fat: 3.8, protein: 3.2, temperature: 4.4, antibiotics: 'pass' });
  const pressed = Date.now();
  await page.locator('button.submit').click();
  const waiting = page.locator('.outbox li.pending-entry');
  await waiting.waitFor();
  const madeBy = Date.now();
  assert.match(await page.locator('#view .notice.info').first().textContent(), /kept on this device/);
  assert.equal(await page.locator('#link').textContent(), 'Gateway unreachable');
  const id = await waiting.getAttribute('data-id');
  const time = await waiting.getAttribute('data-time');
  assert.ok(Date.parse(time) >= pressed - 1 && Date.parse(time) <= madeBy + 1, `made when Submit was pressed: ${time}`);
  await screenshot(page, 'forms-offline-tablet');

  // The gateway comes back on the same address with the same data: the outbox sends it.
  await new Promise((r) => setTimeout(r, 1500)); // so the restart time is clearly later
  const restarted = Date.now();
  gateway = await startGateway({ dataDir: `${dir}/data`, listen: gateway.address });
  const recorded = await eventually(async () => (await entries()).find((e) => e.id === id), 45000, 'the queued entry recorded');
  assert.equal(Date.parse(recorded.time), Date.parse(time), 'recorded at its own time');
  assert.ok(Date.parse(recorded.time) < restarted, 'not at the restart time');
  assert.equal(recorded.values.tanker, 'OFF-42');
  await eventually(async () => (await waiting.count()) === 0, 10000, 'the outbox emptied');
  await page.locator(`table.entries tr[data-entry="${recorded.entry}"]`).waitFor(); // and listed below the form

  // A retry of the same id (a lost answer, a second tab) records nothing new.
  const retry = await fetch(gateway.base + ENTRIES, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ asset: SILO_1, values: recorded.values, id, time }),
  });
  assert.equal(retry.status, 200);
  const answer = await retry.json();
  assert.equal(answer.duplicate, true);
  assert.equal(answer.entry, recorded.entry);
  assert.equal((await entries()).filter((e) => e.id === id).length, 1, 'stored once');
  const history = await api(gateway.base, `/api/v1/history/events?asset=${SILO_1}&kind=operator_entry&from=now-1h`);
  assert.equal(history.events.filter((e) => e.entry === recorded.entry).length, 1, 'one event in history');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('the form renders from what the tablet saw when the API is unreachable at load, and a refused queued entry is shown to fix', async () => {
  const { page, requests, errors } = await openPage(browser, TABLET);
  await page.goto(`${gateway.base}/#/forms/milk-lab`);
  await page.locator('#field-fat').waitFor();
  // The gateway's API goes away (its pages are still in this browser).
  await page.route('**/api/**', (route) => route.abort('connectionrefused'));
  await page.reload();
  await page.locator('#field-fat').waitFor();
  assert.match(await page.locator('#view').textContent(), /forms are shown as this device last saw them/);
  assert.equal(await page.locator('form.login').count(), 0, 'not sent to the login page');
  // Queued with a value the gateway will refuse: it is shown to fix, not retried forever.
  const before = (await entries()).length;
  await fillLab(page, { tanker: 'BAD-1', fat: 7.5, protein: 3.1, temperature: 2, antibiotics: 'fail' });
  await page.locator('button.submit').click();
  await page.locator('.outbox li.pending-entry.waiting').waitFor();
  await page.unroute('**/api/**');
  const refused = page.locator('.outbox li.pending-entry.refused');
  await refused.waitFor({ timeout: 30000 });
  assert.match(await refused.locator('ul.errors').textContent(), /`fat` is 7\.5 %/);
  await refused.locator('button:has-text("Fix")').click();
  assert.match(await page.locator('.field[data-field="fat"] .field-error').textContent(), /outside the range/);
  assert.equal(await page.inputValue('#field-tanker'), 'BAD-1', 'the values are back in the form');
  await page.fill('#field-fat', '4.0');
  await page.locator('button.submit').click();
  await page.locator('.notice.ok').waitFor();
  const list = await entries();
  assert.equal(list.length, before + 1, 'only the fixed entry was recorded');
  assert.equal(list[0].values.tanker, 'BAD-1');
  assert.equal(await page.locator('.outbox li.pending-entry').count(), 0);
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('an entry with an id is on disk before it is answered: after a hard crash a retry is still not stored twice', async () => {
  const body = JSON.stringify({
    asset: SILO_1,
    values: { tanker: 'CRASH-1', fat: 4.0, protein: 3.3, temperature: 4.1, antibiotics: 'pass' },
    id: 'crash-test-1',
    time: new Date().toISOString(),
  });
  const post = () => fetch(gateway.base + ENTRIES, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const first = await post();
  assert.equal(first.status, 201);
  // Killed at once, well within the periodic save's 10 s: no shutdown save either.
  const exited = new Promise((resolve) => gateway.process.once('exit', resolve));
  gateway.process.kill('SIGKILL');
  await exited;
  gateway = await startGateway({ dataDir: `${dir}/data`, listen: gateway.address });
  const retry = await post();
  assert.equal(retry.status, 200, await retry.text());
  assert.equal((await entries()).filter((e) => e.id === 'crash-test-1').length, 1, 'stored once');
});

test('a tablet whose page is reloaded while the gateway is down still opens the form and queues the entry', async () => {
  const { page, errors } = await openPage(browser, TABLET);
  await page.goto(`${gateway.base}/#/forms/milk-lab`);
  await page.locator('#field-fat').waitFor();
  // The service worker has kept the UI's files on the device.
  await eventually(() => page.evaluate(async () => (await caches.open('backplane-ui-v1').then((c) => c.keys())).length >= 8), 10000, 'the UI kept on the device');
  await gateway.stop();
  await page.reload();
  await page.locator('#field-fat').waitFor();
  await fillLab(page, { tanker: 'RELOAD-1', fat: 3.9, protein: 3.3, temperature: 4.0, antibiotics: 'pass' });
  await page.locator('button.submit').click();
  const waiting = page.locator('.outbox li.pending-entry');
  await waiting.waitFor();
  const id = await waiting.getAttribute('data-id');
  gateway = await startGateway({ dataDir: `${dir}/data`, listen: gateway.address });
  await eventually(async () => (await entries()).find((e) => e.id === id), 45000, 'the entry recorded after the restart');
  // The browser's own messages about the unreachable gateway while it was down are not
  // page errors of the UI.
  assert.deepEqual(errors, []);
});
