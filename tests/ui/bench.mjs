// The web UI's budgets (issue 14), measured in Debian's Chromium against a release build:
//   1. all UI files together ≤ 250 KB uncompressed;
//   2. first render of the asset page ≤ 300 ms on loopback (navigation start → every
//      attribute row drawn with its value), median and worst of RUNS fresh loads;
//   3. the browser (all of Chromium's processes) < 1 % of a core with a page showing
//      50 live values updating at 1 Hz, over MEASURE_S seconds, beside an idle blank page.
// Run: scripts/bench-ui (builds the release binary first). Prints one line per figure.

import { readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, launchBrowser, openPage, tempDir, cleanup, eventually, api, DESKTOP } from './harness.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = 15;
const MEASURE_S = Number(process.env.MEASURE_S || 30);
const FILLER = 'acme-dairy/plant-a/packaging/line-1/filler';

function uiBytes(dir = join(ROOT, 'crates/ui/assets')) {
  return readdirSync(dir).reduce((sum, name) => {
    const p = join(dir, name);
    return sum + (statSync(p).isDirectory() ? uiBytes(p) : statSync(p).size);
  }, 0);
}

/** CPU seconds (user + system) of `pid` and all its descendants, from /proc. */
function treeCpuSeconds(pid) {
  const ticks = Number(process.env.CLK_TCK || 100);
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  const stat = new Map();
  for (const p of procs) {
    try {
      const text = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stat.set(Number(p), { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / ticks });
    } catch {
      // exited meanwhile
    }
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, s] of stat) if (!tree.has(p) && tree.has(s.ppid)) (tree.add(p), (grew = true));
  }
  return [...tree].reduce((sum, p) => sum + (stat.get(p)?.cpu || 0), 0);
}

function snapshotPerProcess(root) {
  const out = new Map();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const text = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (!/chrom/.test(cmd)) continue;
      const type = (cmd.match(/--type=([a-z-]+)/) || [, 'browser'])[1];
      out.set(Number(d), { name: type, cpu: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function chromiumPid() {
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const text = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && /chrom/.test(text.slice(0, text.lastIndexOf(')')))) return Number(d);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error('no chromium process under this one');
}

async function cpuOver(pid, seconds) {
  const start = treeCpuSeconds(pid);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (treeCpuSeconds(pid) - start) / ((Date.now() - t0) / 1000);
}

const PANEL = (n) => `
[gateway]
name = "ui-bench"
data_dir = "data"

[namespace]
enterprise = "bench"
site = "site"

[models.Panel.attributes]
${Array.from({ length: n }, (_, i) => `v${String(i + 1).padStart(2, '0')} = { type = "float", unit = "bar" }`).join('\n')}

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/panel"
model = "Panel"
source = "sim"
${Array.from({ length: n }, (_, i) => `bindings.v${String(i + 1).padStart(2, '0')} = { address = "s${i + 1}" }`).join('\n')}

[[sources]]
name = "sim"
kind = "simulator"
seed = 7
period = "1s"
[sources.signals]
${Array.from({ length: n }, (_, i) => `"s${i + 1}" = { signal = "random_walk", start = 5, step = 0.1, min = 0, max = 10 }`).join('\n')}
`;

const results = [];
const say = (line) => {
  results.push(line);
  console.log(line);
};

say(`ui files: ${uiBytes()} bytes (budget 256000)`);

const dir = tempDir();
const browser = await launchBrowser();
try {
  // 2. First render of the asset page.
  const demo = await startGateway({ dataDir: `${dir}/demo` });
  await eventually(async () => (await api(demo.base, `/api/v1/assets/${FILLER}`)).attributes.speed.value !== null, 30000, 'filler values');
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const { context, page } = await openPage(browser, DESKTOP);
    await page.goto(`${demo.base}/#/asset/${FILLER}`);
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll('tr[data-attribute] button.value')];
      return cells.length > 0 && cells.every((c) => c.textContent !== '');
    });
    times.push(await page.evaluate(() => performance.now()));
    await context.close();
  }
  await demo.stop();
  times.sort((a, b) => a - b);
  say(`asset page first render: median ${times[RUNS >> 1].toFixed(0)} ms, worst ${times[RUNS - 1].toFixed(0)} ms over ${RUNS} fresh loads (budget 300 ms; first load included)`);

  // 3. CPU with 50 live values at 1 Hz.
  writeFileSync(`${dir}/panel.toml`, PANEL(50));
  const panel = await startGateway({ args: ['run', '--listen', '127.0.0.1:0', `${dir}/panel.toml`], cwd: dir });
  const pid = chromiumPid();
  const { context, page } = await openPage(browser, DESKTOP);
  await page.goto('about:blank');
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await cpuOver(pid, MEASURE_S);
  await page.goto(`${panel.base}/#/asset/bench/site/area/panel`);
  await page.locator('.live.on').waitFor();

  const rows = await page.locator('tr[data-attribute]').count();
  let changes = 0;
  await page.exposeFunction('benchChange', () => changes++);
  await page.evaluate(() => new MutationObserver((m) => window.benchChange(m.length)).observe(document.querySelector('table.values'), { subtree: true, characterData: true, childList: true }));
  await new Promise((r) => setTimeout(r, 3000));
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const before = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const perProcess = process.env.BENCH_DETAIL ? snapshotPerProcess(pid) : null;
  const live = await cpuOver(pid, MEASURE_S);
  if (perProcess) {
    const after = snapshotPerProcess(pid);
    for (const [p, v] of after) console.log(`  pid ${p} ${v.name}: ${(((v.cpu - (perProcess.get(p)?.cpu || 0)) / MEASURE_S) * 100).toFixed(2)} %`);
    const m = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
    for (const k of ['TaskDuration', 'ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration']) console.log(`  renderer ${k}: ${(((m[k] - before[k]) / MEASURE_S) * 100).toFixed(2)} %`);
  }
  say(`browser CPU, ${rows} live values at 1 Hz: ${(live * 100).toFixed(2)} % of a core (blank page: ${(idle * 100).toFixed(2)} %; ${MEASURE_S} s each; budget < 1 %; ${changes} DOM updates seen)`);
  await context.close();
  await panel.stop();
} finally {
  await browser.close();
  cleanup(dir);
}
