// A machine-state timeline: the `state_changed` events of one asset between `from` and `to`
// as SVG bars coloured by category (running, planned, unplanned), with a time axis.

import { s, formatTime, formatDuration } from './dom.js';

const W = 1000;
const BAR = 30;
const STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 240];

/** The category of a state: those the states API said, else running for execute/running. */
export function categorize(state, known) {
  if (known.has(state)) return known.get(state);
  if (state === 'execute' || state === 'running') return 'running';
  if (state === 'planned_stop') return 'planned';
  return 'unplanned';
}

/**
 * Segments [{state, start, end}] (ms) from the events (sorted by time) and the current
 * `{state, since}`, clipped to [from, to].
 */
export function segments(events, current, from, to) {
  const out = [];
  const push = (state, start, end) => {
    const a = Math.max(start, from);
    const b = Math.min(end, to);
    if (state && b > a) out.push({ state, start: a, end: b });
  };
  const first = events[0];
  if (first?.from) push(first.from, first.since ? Date.parse(first.since) : from, Date.parse(first.time));
  events.forEach((e, i) => push(e.to, Date.parse(e.time), i + 1 < events.length ? Date.parse(events[i + 1].time) : to));
  if (!events.length && current?.state) push(current.state, current.since ? Date.parse(current.since) : from, to);
  return out;
}

/** The SVG: one bar per segment, coloured by `categorize`, and time ticks. */
export function drawTimeline(parts, from, to, known, label) {
  const span = to - from;
  const x = (t) => ((t - from) / span) * W;
  const step = (STEPS_MIN.find((m) => span / (m * 60000) <= 8) || 480) * 60000;
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return s(
    'svg.timeline',
    { viewBox: `0 0 ${W} ${BAR + 22}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' },
    s('rect.track', { x: 0, y: 0, width: W, height: BAR }),
    parts.map((p) =>
      s(
        `rect.seg.cat-${categorize(p.state, known)}`,
        { x: x(p.start).toFixed(2), y: 0, width: Math.max(x(p.end) - x(p.start), 0.5).toFixed(2), height: BAR, dataset: { state: p.state } },
        s('title', `${p.state}: ${formatTime(new Date(p.start).toISOString(), { date: false })} – ${formatTime(new Date(p.end).toISOString(), { date: false })} (${formatDuration((p.end - p.start) / 1000)})`),
      ),
    ),
    ticks.map((t) => [
      s('line.tick', { x1: x(t), x2: x(t), y1: BAR, y2: BAR + 5 }),
      s('text.tick', { x: x(t), y: BAR + 18, 'text-anchor': 'middle' }, formatTime(new Date(t).toISOString(), { date: false }).slice(0, 5)),
    ]),
  );
}

/** Seconds per category within the parts. */
export function totals(parts, known) {
  const sum = { running: 0, planned: 0, unplanned: 0 };
  for (const p of parts) sum[categorize(p.state, known)] += (p.end - p.start) / 1000;
  return sum;
}
