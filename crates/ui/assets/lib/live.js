// Live samples and events over Server-Sent Events (`/api/v1/stream/sse`). EventSource
// reconnects by itself after a gateway restart; after every (re)connect and after a
// `lagged` record the page is told to re-read the latest values, so a gap is never shown
// as current data.

import { query } from './api.js';

/**
 * Follows everything at or below `prefix`. Handlers: `sample(payload)`, `event(payload)`,
 * `resync()` (on open and after lagging: re-read `/api/v1/values`), `state(open)`.
 * Returns a function that stops following.
 */
export function follow(prefix, handlers) {
  const source = new EventSource(`/api/v1/stream/sse${query({ prefix })}`);
  const parse = (listener) => (message) => {
    let record;
    try {
      record = JSON.parse(message.data);
    } catch {
      return;
    }
    listener(record);
  };
  if (handlers.sample) source.addEventListener('sample', parse(handlers.sample));
  if (handlers.event) source.addEventListener('event', parse(handlers.event));
  source.addEventListener('lagged', () => handlers.resync?.());
  source.addEventListener('open', () => {
    handlers.state?.(true);
    handlers.resync?.();
  });
  source.addEventListener('error', () => handlers.state?.(false));
  return () => source.close();
}

/**
 * Calls `render()` once for a burst of updates: after the first update it waits `settleMs`
 * for the rest of the burst (a source's poll arrives as many samples within a few
 * milliseconds), and never sooner than `minIntervalMs` after the last render; then draws in
 * the next animation frame. With both 0 it draws once per animation frame. A page showing
 * many fast values then costs one layout per poll, not one per sample.
 */
export function coalesce(render, { settleMs = 0, minIntervalMs = 0 } = {}) {
  let pending = false;
  let last = -Infinity;
  const run = () => {
    pending = false;
    last = performance.now();
    render();
  };
  return () => {
    if (pending) return;
    pending = true;
    const wait = Math.max(settleMs, last + minIntervalMs - performance.now());
    if (wait > 0) setTimeout(() => requestAnimationFrame(run), wait);
    else requestAnimationFrame(run);
  };
}
