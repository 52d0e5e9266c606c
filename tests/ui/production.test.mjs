// The production page against the dairy demo: work orders through their life cycle with the
// confirmation step, machine-state timelines, downtime reasons, OEE with the lines compared,
// and a lot's genealogy. The demo's MES starts WO-1001 on line 1 and WO-1002 on line 2.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, assertOnlyGateway, screenshot, api, eventually, DESKTOP, startDemo, stopDemo } from './harness.mjs';

const LINE_1 = 'acme-dairy/plant-a/packaging/line-1';
const P = '/api/v1/production';

let dir, gateway, browser;
before(async () => ({ dir, gateway, browser } = await startDemo()));
after(() => stopDemo({ dir, gateway, browser }));

const order = async (id) => api(gateway.base, `${P}/work-orders/${encodeURIComponent(id)}`);

/** Opens the production page at `tab` (and more of the hash). */
async function open(hash) {
  const opened = await openPage(browser);
  await opened.page.goto(`${gateway.base}/#/production?${hash}`);
  return opened;
}

async function shots(page, name) {
  await screenshot(page, `production-${name}-tablet`);
  await page.setViewportSize(DESKTOP);
  await screenshot(page, `production-${name}-desktop`);
}

/** Clicks `action` of `id` and answers the confirmation dialog; returns its text. */
async function act(page, id, action, answer) {
  await page.locator(`tr[data-order="${id}"] button[data-action="${action}"]`).click();
  const dialog = page.locator('dialog.confirm');
  await dialog.waitFor();
  const text = await dialog.textContent();
  await dialog.locator(`button[data-answer="${answer}"]`).click();
  await dialog.waitFor({ state: 'detached' });
  return text;
}

test('cancelling the confirmation dialog changes nothing', async () => {
  await eventually(async () => (await order('WO-1001')).status === 'running', 30000, 'WO-1001 running');
  const { page, requests, errors } = await open('tab=orders');
  const posts = [];
  page.on('request', (r) => r.method() === 'POST' && posts.push(r.url()));
  await page.locator('tr[data-order="WO-1001"]').waitFor();
  const text = await act(page, 'WO-1001', 'complete', 'false');
  assert.match(text, /Complete WO-1001\?/);
  // Escape is a "no" as well.
  await page.locator('tr[data-order="WO-1001"] button[data-action="hold"]').click();
  await page.locator('dialog.confirm').waitFor();
  await page.keyboard.press('Escape');
  await page.locator('dialog.confirm').waitFor({ state: 'detached' });
  assert.deepEqual(posts, [], 'no change was sent');
  assert.equal((await order('WO-1001')).status, 'running');
  assert.equal(await page.locator('tr[data-order="WO-1001"]').getAttribute('data-status'), 'running');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test("a work order created and started in the UI becomes the context of its line's samples", async () => {
  const { page, requests, errors } = await open('tab=orders');
  await page.locator('tr[data-order="WO-1001"]').waitFor();
  // Line 1 runs the demo's order: complete it through the UI first.
  await act(page, 'WO-1001', 'complete', 'true');
  await eventually(async () => (await order('WO-1001')).status === 'completed', 5000, 'WO-1001 completed');

  // The form: a new order on line 1, then release and start it, each confirmed.
  await page.fill('#wo-id', 'WO-UI-7');
  await page.fill('#wo-product', 'milk-1l-ui');
  await page.selectOption('#wo-asset', LINE_1);
  await page.fill('#wo-qty', '1200');
  await page.click('form.new-order button[type="submit"]');
  await page.locator(`section.line[data-asset="${LINE_1}"] tr[data-order="WO-UI-7"][data-status="created"]`).waitFor();
  const created = await order('WO-UI-7');
  assert.equal(created.asset, LINE_1);
  assert.equal(created.product, 'milk-1l-ui');
  assert.equal(created.planned_quantity, 1200);
  await act(page, 'WO-UI-7', 'release', 'true');
  await page.locator('tr[data-order="WO-UI-7"][data-status="released"]').waitFor();

  await page.locator('tr[data-order="WO-UI-7"] button[data-action="start"]').click();
  const dialog = page.locator('dialog.confirm');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Start WO-UI-7 on line-1\? Every sample of line-1 will carry this work order/);
  await screenshot(page, 'production-confirm-tablet');
  await dialog.locator('button[data-answer="true"]').click();
  await page.locator('tr[data-order="WO-UI-7"][data-status="running"]').waitFor();
  assert.match(await page.locator('.status .notice.ok').textContent(), /WO-UI-7 started/);
  assert.equal((await order('WO-UI-7')).status, 'running');

  // Every sample of line 1 read from now on carries the new order.
  await eventually(async () => {
    const values = await api(gateway.base, `/api/v1/values?prefix=${LINE_1}`);
    return values.length > 0 && values.every((s) => s.context.work_order === 'WO-UI-7' && s.context.product === 'milk-1l-ui');
  }, 10000, "line 1's samples carrying WO-UI-7");

  // A second order on the same line: the server's refusal (409) is said plainly.
  await api(gateway.base, `${P}/work-orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'WO-UI-8', product: 'cream', asset: LINE_1 }) });
  await api(gateway.base, `${P}/work-orders/WO-UI-8/release`, { method: 'POST' });
  await page.locator('tr[data-order="WO-UI-8"][data-status="released"]').waitFor({ timeout: 8000 });
  await act(page, 'WO-UI-8', 'start', 'true');
  const refusal = page.locator('.status .notice.error');
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /WO-UI-8 could not be started: work order `WO-UI-7` is already running/);
  assert.equal((await order('WO-UI-8')).status, 'released');
  await shots(page, 'orders');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('a downtime reason picked in the tree shows in the downtimes API', async () => {
  // The demo's fillers start idle: a downtime per filler opens at once.
  const downtime = await eventually(async () => (await api(gateway.base, `${P}/downtimes`)).find((d) => d.asset.startsWith(LINE_1)), 30000, 'a downtime on line 1');
  const { page, requests, errors } = await open('tab=downtimes');
  await page.locator(`tr[data-id="${downtime.id}"] button`).click();
  const picker = page.locator('dialog.reasons');
  await picker.waitFor();
  assert.equal(await picker.locator('footer button.primary').isDisabled(), true, 'nothing to assign before a choice');
  await picker.locator('button.reason[data-code="mechanical"]').click();
  await picker.locator('button.reason[data-code="mechanical/jam"]').click();
  await screenshot(page, 'production-reasons-tablet');
  await picker.locator('footer button.primary').click();
  await eventually(async () => {
    const d = (await api(gateway.base, `${P}/downtimes`)).find((x) => x.id === downtime.id);
    return d.reason === 'mechanical/jam' && d.assigned_by === 'command';
  }, 5000, 'the reason in the API');
  await page.locator(`tr[data-id="${downtime.id}"] td.reason`, { hasText: 'Bottle jam' }).waitFor();
  await shots(page, 'downtimes');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('the OEE comparison shows every line the benchmark API returns', async () => {
  // Close line 2's order too, so both lines have a work-order period to compare (once its
  // filler, on a slower OPC UA session, has an open period for it).
  await eventually(async () => (await api(gateway.base, `${P}/oee?asset=packaging/line-2&period=work_order`)).some((r) => r.current.some((p) => p.work_order === 'WO-1002')), 60000, 'line 2 has WO-1002 open');
  await api(gateway.base, `${P}/work-orders/WO-1002/complete`, { method: 'POST' });
  let last;
  const bench = await eventually(async () => {
    const b = (last = await api(gateway.base, '/api/v1/benchmark/oee?model=Filler&by=work_order'));
    return b.rows.length >= 2 && b;
  }, 10000, 'two closed work orders in the benchmark').catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify(last)} ${JSON.stringify(await api(gateway.base, '/api/v1/history/events?kind=oee,work_order&from=now-1h'))}`);
  });
  const { page, requests, errors } = await open('tab=oee&by=work_order');
  const rows = page.locator('.bench[data-model="Filler"] .bar-row');
  await rows.first().waitFor();
  const lines = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.line));
  assert.deepEqual([...lines].sort(), bench.rows.map((r) => r.line).sort());
  assert.ok(lines.includes(LINE_1) && lines.includes('acme-dairy/plant-a/packaging/line-2'), `both lines: ${lines}`);
  // Per asset and period: a table for each tracked filler.
  const oee = await api(gateway.base, `${P}/oee`);
  const cards = await page.locator('section.oee-card').evaluateAll((cs) => cs.map((c) => c.dataset.asset));
  assert.deepEqual(cards.sort(), [...new Set(oee.map((r) => r.asset))].sort());
  await shots(page, 'oee');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('the genealogy graph of PAL-F1-B4711 backward shows the lots of the trace, and a click re-centres', async () => {
  const trace = await eventually(async () => {
    const t = await api(gateway.base, `${P}/lots/PAL-F1-B4711/trace?direction=backward`);
    return t.backward.lots.length >= 3 && t;
  }, 120000, 'the pallet genealogy');
  const { page, requests, errors } = await open('tab=genealogy&lot=PAL-F1-B4711&dir=backward');
  const graph = page.locator('svg.genealogy');
  await graph.waitFor();
  const shown = await graph.locator('g.lot').evaluateAll((ns) => ns.map((n) => n.dataset.lot));
  assert.deepEqual(shown.sort(), ['PAL-F1-B4711', ...trace.backward.lots.map((l) => l.lot)].sort());
  assert.equal(await graph.locator('g.link').count(), trace.backward.links.length);
  assert.equal(await graph.locator('g.lot.center').getAttribute('data-lot'), 'PAL-F1-B4711');
  await shots(page, 'genealogy');
  await page.locator('g.lot[data-lot="B4711"]').click();
  await page.locator('g.lot.center[data-lot="B4711"]').waitFor();
  assert.match(page.url(), /lot=B4711&dir=backward/);
  // Both ways from the batch: the silo lots behind it and the filler lots and pallet after it.
  await page.selectOption('#lot-dir', 'both');
  await page.waitForURL(/lot=B4711&dir=both/);
  const both = await api(gateway.base, `${P}/lots/B4711/trace`);
  await page.locator('svg.genealogy g.lot.center[data-lot="B4711"]').waitFor();
  const expected = [['B4711', 0], ...both.backward.lots.map((l) => [l.lot, -l.depth]), ...both.forward.lots.map((l) => [l.lot, l.depth])];
  // The backward graph centred on B4711 already matches the selector above: wait until the
  // graph for both directions has replaced it (it is cleared and drawn again), then compare.
  const lots = await eventually(async () => {
    const now = await page.locator('svg.genealogy g.lot').evaluateAll((ns) => ns.map((n) => [n.dataset.lot, Number(n.dataset.depth)]));
    return now.length >= expected.length && now;
  }, 10000, 'the graph of both directions');
  assert.deepEqual(lots.sort(), expected.sort());
  assert.ok(both.forward.lots.some((l) => l.lot === 'PAL-F1-B4711'), 'the pallet is downstream of the batch');
  await screenshot(page, 'production-genealogy-both-desktop');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('the machine-state timeline shows every tracked asset with its current state', async () => {
  const { page, requests, errors } = await open('tab=states');
  await page.locator('section.timeline-card svg.timeline rect.seg').first().waitFor();
  // The page re-reads every 5 s; an asset whose first state arrives late (line 2's filler)
  // appears on the next read, so compare until both sides agree.
  let cards, states, segs;
  await eventually(
    async () => {
      states = (await api(gateway.base, `${P}/states`)).map((s) => s.asset).sort();
      cards = (await page.locator('section.timeline-card').evaluateAll((cs) => cs.map((c) => c.dataset.asset))).sort();
      segs = await page.locator('svg.timeline rect.seg').evaluateAll((rs) => rs.map((r) => [r.dataset.state, r.getAttribute('class')]));
      return JSON.stringify(cards) === JSON.stringify(states) && segs.some(([s]) => s === 'execute') && segs.some(([s]) => s === 'idle');
    },
    15000,
    'a card per tracked asset with running and idle bars',
  ).catch(() => {});
  assert.deepEqual(cards, states);
  assert.ok(segs.some(([s, c]) => s === 'execute' && c.includes('cat-running')), `a running bar: ${JSON.stringify(segs)}`);
  assert.ok(segs.some(([s, c]) => s === 'idle' && c.includes('cat-unplanned')), `an idle (unplanned) bar: ${JSON.stringify(segs)}`);
  await shots(page, 'states');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('a viewer sees work orders and downtimes but no actions, form or reason buttons', async () => {
  const { page, requests, errors } = await openPage(browser);
  // The demo is in open mode (admin): answer "who am I" as a viewer would be answered.
  await page.route('**/api/v1/session', (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ user: 'vera', role: 'viewer', method: 'session', csrf_token: 'x' }) }));
  await page.goto(`${gateway.base}/#/production?tab=orders`);
  await page.locator('section.line tr[data-order]').first().waitFor();
  assert.equal(await page.locator('form.new-order').count(), 0, 'no new-order form');
  assert.equal(await page.locator('button[data-action]').count(), 0, 'no life-cycle buttons');
  await page.goto(`${gateway.base}/#/production?tab=downtimes`);
  await page.locator('table.downtimes tbody tr').first().waitFor();
  assert.equal(await page.locator('table.downtimes button').count(), 0, 'no reason buttons');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});
