// The trends page against the dairy demo: what the chart draws is what the history API
// answers for the range the page asked for, raw or as buckets; the CSV export holds the
// same points; work orders are drawn behind the curves of their line's tags.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { startGateway, launchBrowser, openPage, assertOnlyGateway, screenshot, api, eventually, tempDir, cleanup, DESKTOP } from './harness.mjs';

const LINE_1 = 'acme-dairy/plant-a/packaging/line-1';
const LINE_2 = 'acme-dairy/plant-a/packaging/line-2';
const SPEED_1 = `${LINE_1}/filler/speed`;
const SPEED_2 = `${LINE_2}/filler/speed`;
const TEMPERATURE_1 = `${LINE_1}/filler/product_temperature`;
const FLOW = 'acme-dairy/plant-a/processing/pasteurizer/flow';

let dir, gateway, browser, firstPoint;
before(async () => {
  dir = tempDir();
  browser = await launchBrowser();
  if (process.env.TRENDS_ONLY_FLAKY) return;
  gateway = await startGateway({ dataDir: `${dir}/data` });
  // The demo's historian needs some seconds of data, and its work orders running.
  await eventually(async () => {
    const { series } = await api(gateway.base, `/api/v1/history/series?tag=${SPEED_1},${SPEED_2},${FLOW}`);
    return series.every((s) => s.points >= 15);
  }, 60000, "fifteen stored points per series");
  const running = await api(gateway.base, '/api/v1/production/work-orders?status=running');
  assert.ok(running.length >= 2, 'the demo runs work orders on both lines');
  const { series } = await api(gateway.base, `/api/v1/history/series?tag=${SPEED_1}`);
  firstPoint = Date.parse(series[0].first);
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
  cleanup(dir);
});

const iso = (ms) => new Date(ms).toISOString();
const trendUrl = (tags, params) => `${gateway.base}/#/trends?tags=${tags.map(encodeURIComponent).join(',')}&${new URLSearchParams(params)}`;
/** The drawn points of each series element: {path: {mode, points}}. */
const drawn = (page) =>
  page.locator('svg.trend-chart g.series').evaluateAll((groups) => Object.fromEntries(groups.map((g) => [g.dataset.path, { mode: g.dataset.mode, points: JSON.parse(g.dataset.points) }])));
/** The plot's box as drawn. */
const plotBox = (page) =>
  page.locator('svg.trend-chart rect.frame').evaluate((r) => ({ l: +r.getAttribute('x'), w: +r.getAttribute('width'), t: +r.getAttribute('y'), h: +r.getAttribute('height') }));
/** The last recorded request to `path`, as a path with its query (for `api`). */
const lastRequest = (requests, path) => {
  const url = requests.filter((u) => new URL(u).pathname === path).at(-1);
  assert.ok(url, `the page asked ${path}`);
  const u = new URL(url);
  return { path: u.pathname + u.search, params: u.searchParams };
};
/** The CSV the Export button downloads, as rows of cells (no quoted cells in these data). */
async function exportCsv(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const text = readFileSync(await download.path(), 'utf8');
  const [header, ...rows] = text.trimEnd().split('\r\n').map((l) => l.split(','));
  assert.deepEqual(header, ['time', 'series', 'unit', 'value', 'quality', 'min', 'mean', 'max']);
  return rows;
}
const cell = (v) => (v === null || v === undefined ? '' : String(v));

test('the chart draws the raw points the history API answers for the range the page asked for, and exports them', async () => {
  const { page, requests, errors } = await openPage(browser);
  const to = Date.now() - 2000;
  const from = Math.max(firstPoint - 5000, to - 120000);
  await page.goto(trendUrl([SPEED_1, TEMPERATURE_1, FLOW], { from: iso(from), to: iso(to) }));
  await page.locator(`g.series[data-path="${FLOW}"]`).waitFor({ state: 'attached' });

  const raw = lastRequest(requests, '/api/v1/history/raw');
  assert.equal(raw.params.get('from'), iso(from), 'the range of the URL was asked for');
  assert.equal(raw.params.get('to'), iso(to));
  const box = await plotBox(page);
  assert.ok(Number(raw.params.get('limit')) <= 2 * box.w + 1, `at most 2 points per pixel: limit ${raw.params.get('limit')} for ${box.w} px`);
  const answer = await api(gateway.base, raw.path);
  const chart = await drawn(page);
  assert.deepEqual(Object.keys(chart).sort(), [SPEED_1, TEMPERATURE_1, FLOW].sort());
  for (const series of answer.series) {
    assert.ok(series.points.length > 10, `${series.path} has points in the range`);
    assert.equal(chart[series.path].mode, 'raw');
    assert.deepEqual(chart[series.path].points, series.points.map((p) => [p.time, p.value, p.quality]), `${series.path}: drawn = answered`);
  }
  // The line of the speed has one vertex per good point, at the point's time.
  const speed = answer.series.find((s) => s.path === SPEED_1).points;
  const good = speed.filter((p) => p.quality !== 'bad' && typeof p.value === 'number');
  const vertices = await page.locator(`g.series[data-path="${SPEED_1}"] .line, g.series[data-path="${SPEED_1}"] .dot`).evaluateAll((els) =>
    els.flatMap((el) => (el.tagName === 'circle' ? [[+el.getAttribute('cx')]] : [...el.getAttribute('d').matchAll(/[ML]([-\d.]+),([-\d.]+)/g)].map((m) => [+m[1], +m[2]]))),
  );
  assert.equal(vertices.length, good.length, 'one vertex per good point');
  const expectedX = box.l + ((Date.parse(good[0].time) - from) / (to - from)) * box.w;
  assert.ok(Math.abs(vertices[0][0] - expectedX) < 1, `the first point at its time: x ${vertices[0][0]}, expected ${expectedX}`);

  // The CSV holds exactly those points.
  const rows = await exportCsv(page);
  const expected = answer.series.flatMap((s) => s.points.map((p) => [p.time, s.path, s.unit || '', cell(p.value), p.quality, '', '', '']));
  assert.deepEqual(rows.sort(), expected.sort());

  // Dragging a box zooms into its time range and draws what the API answers for it.
  const before = requests.length;
  const y = box.t + box.h / 2;
  const svg = await page.locator('svg.trend-chart').boundingBox();
  await page.mouse.move(svg.x + box.l + box.w * 0.25, svg.y + y);
  await page.mouse.down();
  await page.mouse.move(svg.x + box.l + box.w * 0.5, svg.y + y, { steps: 5 });
  await page.mouse.move(svg.x + box.l + box.w * 0.75, svg.y + y, { steps: 5 });
  await page.mouse.up();
  await eventually(() => requests.slice(before).some((u) => u.includes('/api/v1/history/raw')), 5000, 'a request for the zoomed range');
  const zoomed = lastRequest(requests, '/api/v1/history/raw');
  const [zFrom, zTo] = [Date.parse(zoomed.params.get('from')), Date.parse(zoomed.params.get('to'))];
  const pxMs = (to - from) / box.w;
  assert.ok(Math.abs(zFrom - (from + (to - from) * 0.25)) < 2 * pxMs && Math.abs(zTo - (from + (to - from) * 0.75)) < 2 * pxMs, `zoomed to the box: ${iso(zFrom)} – ${iso(zTo)}`);
  const zAnswer = await api(gateway.base, zoomed.path);
  await eventually(async () => {
    const now = await drawn(page);
    return zAnswer.series.every((s) => JSON.stringify(now[s.path].points) === JSON.stringify(s.points.map((p) => [p.time, p.value, p.quality])));
  }, 5000, 'the zoomed points drawn');
  assert.match(await page.evaluate(() => location.hash), /from=.*&to=/, 'the zoomed range is in the URL');
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('buckets: the min–max band and mean line are the aggregate API answer, at most one bucket per two pixels', async () => {
  const { page, requests, errors } = await openPage(browser);
  // Half an hour: the buckets are seconds wide, and only the last minute or so has data.
  const to = Date.now() - 2000;
  const from = to - 30 * 60000;
  await page.goto(trendUrl([SPEED_1, SPEED_2], { from: iso(from), to: iso(to), mode: 'buckets' }));
  await page.locator(`g.series[data-path="${SPEED_2}"][data-mode="buckets"]`).waitFor({ state: 'attached' });
  const agg = lastRequest(requests, '/api/v1/history/aggregate');
  assert.deepEqual(agg.params.get('fn').split(',').sort(), ['count', 'max', 'mean', 'min']);
  assert.equal(agg.params.get('to'), iso(to));
  assert.ok(Date.parse(agg.params.get('from')) <= from, 'the buckets cover the start of the range');
  const answer = await api(gateway.base, agg.path);
  const box = await plotBox(page);
  const chart = await drawn(page);
  for (const series of answer.series) {
    assert.ok(series.buckets.length <= box.w / 2 + 1, `${series.buckets.length} buckets for ${box.w} px`);
    const used = series.buckets.filter((b) => b.mean !== null);
    assert.ok(used.length >= 3, `${series.path}: buckets with data`);
    assert.deepEqual(chart[series.path].points, used.map((b) => [b.start, b.min, b.mean, b.max]), `${series.path}: drawn = answered`);
    assert.ok(await page.locator(`g.series[data-path="${series.path}"] path.range`).count(), 'a min–max band');
  }
  const rows = await exportCsv(page);
  const expected = answer.series.flatMap((s) => s.buckets.filter((b) => b.mean !== null).map((b) => [b.start, s.path, s.unit, '', '', cell(b.min), cell(b.mean), cell(b.max)]));
  assert.deepEqual(rows.sort(), expected.sort());
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test("each line's running work order is drawn as a labelled band behind its tags, and hover says the values", async () => {
  const { page, requests, errors } = await openPage(browser);
  const orders = await api(gateway.base, '/api/v1/production/work-orders?status=running');
  const line1 = orders.find((o) => o.asset === LINE_1);
  const line2 = orders.find((o) => o.asset === LINE_2);
  assert.ok(line1 && line2, 'work orders run on both lines');
  await page.goto(trendUrl([SPEED_1, SPEED_2, FLOW], { from: iso(firstPoint - 10000), to: iso(Date.now()) }));
  for (const order of [line1, line2]) {
    const band = page.locator(`rect.band.work_order[data-id="${order.id}"]`);
    await band.waitFor({ state: 'attached' });
    assert.match(await band.locator('title').textContent(), new RegExp(`Work order ${order.id}, ${order.product}, on ${order.asset}`));
    assert.match(await page.locator(`g.band-label.work_order[data-id="${order.id}"] text`).textContent(), new RegExp(order.id));
  }
  // The band starts where the order started (or at the left edge when it started before).
  const box = await plotBox(page);
  const x = +(await page.locator(`rect.band.work_order[data-id="${line1.id}"]`).getAttribute('x'));
  const from = firstPoint - 10000;
  const hash = new URLSearchParams((await page.evaluate(() => location.hash)).split('?')[1]);
  const to = Date.parse(hash.get('to'));
  const expected = Math.max(box.l, box.l + ((Date.parse(line1.actual_start) - from) / (to - from)) * box.w);
  assert.ok(Math.abs(x - expected) < 1.5, `band at x ${x}, expected ${expected}`);

  // Hovering over the running order shows the time, each series' value and the order.
  const svg = await page.locator('svg.trend-chart').boundingBox();
  await page.mouse.move(svg.x + box.l + box.w * 0.9, svg.y + box.t + box.h / 2);
  const tip = page.locator('.trend-tip');
  await tip.waitFor();
  const tipRows = await tip.locator('.tip-row').evaluateAll((rows) => rows.map((r) => [r.dataset.path, r.querySelector('b').textContent]));
  assert.deepEqual(tipRows.map((r) => r[0]).sort(), [SPEED_1, SPEED_2, FLOW].sort());
  assert.ok(tipRows.every(([, v]) => /^-?[\d.]+(e[-+]\d+)? (bottle\/min|L\/h)/.test(v)), `values with units: ${JSON.stringify(tipRows)}`);
  assert.match(await tip.textContent(), new RegExp(`Work order ${line1.id}`));
  await screenshot(page, 'trends-tablet');
  await page.setViewportSize(DESKTOP);
  await page.mouse.move(0, 0);
  await page.waitForTimeout(400); // the page re-reads the range for the wider chart
  await screenshot(page, 'trends-desktop');

  // The pasteurizer is not on a packaging line: no work-order band behind its flow.
  await page.goto(trendUrl([FLOW], { range: '15m' }));
  await page.locator(`g.series[data-path="${FLOW}"]`).waitFor({ state: 'attached' });
  await page.waitForTimeout(300);
  assert.equal(await page.locator('rect.band.work_order').count(), 0);
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('tags are added and removed, and the URL and presets follow', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/trends`);
  await page.getByRole('link', { name: 'Trends' }).waitFor();
  await page.locator('input.add-series').fill(SPEED_1);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator(`g.series[data-path="${SPEED_1}"]`).waitFor({ state: 'attached' });
  await page.locator('input.add-series').fill(FLOW);
  await page.locator('input.add-series').press('Enter');
  await page.locator(`g.series[data-path="${FLOW}"]`).waitFor({ state: 'attached' });
  // Two units, two axes.
  assert.deepEqual(await page.locator('g.y-axis').evaluateAll((g) => g.map((x) => x.dataset.unit)), ['bottle/min', 'L/h']);
  await page.locator('button.preset[data-range="8h"]').click();
  await eventually(async () => decodeURIComponent(await page.evaluate(() => location.hash)).includes('range=8h'), 5000, 'range=8h in the URL');
  await eventually(() => {
    const asked = lastRequest(requests, '/api/v1/history/raw');
    return Math.abs(Date.parse(asked.params.get('to')) - Date.parse(asked.params.get('from')) - 8 * 3600000) < 1000;
  }, 5000, 'eight hours asked for');
  await page.getByRole('button', { name: `Remove ${SPEED_1}` }).click();
  await eventually(async () => (await page.locator('g.series').count()) === 1, 5000, 'one series left');
  assert.match(decodeURIComponent(await page.evaluate(() => location.hash)), new RegExp(`tags=${FLOW}(&|$)`));
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

// A compressor whose source fails every second: each failure is stored as a bad point that
// keeps the last good value, which the chart must not draw as a value.
const FLAKY = `
[gateway]
name = "flaky-edge"
data_dir = "data"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Compressor]
[models.Compressor.attributes]
pressure = { type = "float", unit = "bar", description = "Outlet pressure" }

[[assets]]
path = "utilities"
level = "area"

[[assets]]
path = "utilities/compressor"
model = "Compressor"
source = "flaky-plc"
bindings.pressure = { address = "p" }

[[sources]]
name = "flaky-plc"
kind = "simulator"
period = "100ms"
fail_after = "1s"
[sources.signals]
"p" = { signal = "sine", amplitude = 2, offset = 6, period = "5s" }

[[sinks]]
name = "history"
kind = "historian"
`;

test('bad points break the line and are marked under the plot, never drawn as values', async () => {
  const flakyDir = tempDir();
  writeFileSync(`${flakyDir}/flaky.toml`, FLAKY);
  const flaky = await startGateway({ args: ['run', 'flaky.toml', '--listen', '127.0.0.1:0'], cwd: flakyDir });
  try {
    const PRESSURE = 'acme/plant-a/utilities/compressor/pressure';
    await eventually(async () => {
      const { series } = await api(flaky.base, `/api/v1/history/raw?tag=${PRESSURE}&from=now-1m`);
      return series[0].points.filter((p) => p.quality === 'bad').length >= 3;
    }, 20000, 'three failures stored');
    await new Promise((r) => setTimeout(r, 1000));
    const to = Date.now() - 500;
    const from = Date.parse((await api(flaky.base, `/api/v1/history/series?tag=${PRESSURE}`)).series[0].first) - 1000;
    const { page, requests, errors } = await openPage(browser);
    await page.goto(`${flaky.base}/#/trends?tags=${PRESSURE}&from=${iso(from)}&to=${iso(to)}`);
    const group = page.locator(`g.series[data-path="${PRESSURE}"]`);
    await group.waitFor({ state: 'attached' });
    const answer = await api(flaky.base, lastRequest(requests, '/api/v1/history/raw').path);
    const points = answer.series[0].points;
    const bad = points.filter((p) => p.quality === 'bad');
    assert.ok(bad.length >= 3 && bad.every((p) => typeof p.value === 'number'), `bad points keep the last value: ${JSON.stringify(bad)}`);
    // One line per run of good points between the bad ones, one vertex per good point.
    let runs = 0;
    points.forEach((p, i) => p.quality !== 'bad' && (i === 0 || points[i - 1].quality === 'bad') && runs++);
    const lines = await group.locator('path.line').evaluateAll((els) => els.map((el) => [...el.getAttribute('d').matchAll(/[ML]/g)].length));
    const dots = await group.locator('circle.dot').count();
    assert.equal(lines.length + dots, runs, 'the line breaks at every bad point');
    assert.equal(lines.reduce((a, b) => a + b, 0) + dots, points.length - bad.length, 'only good points are vertices');
    assert.equal(await page.locator('g.bad-marks rect.bad').count(), bad.length, 'each bad point is marked');
    assert.match(await page.locator('g.bad-marks rect.bad title').first().textContent(), /bad \(comm failure\)/);
    // Hovering just after a failure says there is no value, and why.
    const box = await plotBox(page);
    const svg = await page.locator('svg.trend-chart').boundingBox();
    const failure = Date.parse(bad[1].time);
    const next = Date.parse(points[points.indexOf(bad[1]) + 1].time);
    await page.mouse.move(svg.x + box.l + ((failure + (next - failure) / 2 - from) / (to - from)) * box.w, svg.y + box.t + box.h / 2);
    await page.locator('.trend-tip').waitFor();
    assert.match(await page.locator('.trend-tip .tip-row b').textContent(), /no value \(bad: comm failure\)/);
    // The CSV says the same.
    const rows = await exportCsv(page);
    assert.equal(rows.filter((r) => r[4] === 'bad').length, bad.length);
    assert.deepEqual(errors, []);
    assertOnlyGateway(requests, flaky.base);
  } finally {
    await flaky.stop();
    cleanup(flakyDir);
  }
});
