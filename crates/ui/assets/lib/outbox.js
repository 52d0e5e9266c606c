// The outbox: operator entries kept on this device (IndexedDB) until the gateway has them.
// Each entry carries the client id and the time it was made, both fixed when the operator
// pressed Submit; the gateway records an id once, so sending one again is always safe.
// Entries are sent oldest first when the link returns (lib/api.js onLink), on a timer with
// backoff (2 s doubling to 15 s) and when a page loads. A refusal (400, 409) is kept as
// `refused` with the gateway's field errors for the operator to fix or discard; it is
// never sent again as it is.

import { send, onLink } from './api.js';

const DB = 'backplane';
const STORE = 'outbox';
const FIRST_RETRY_MS = 2000;
const MAX_RETRY_MS = 15000;

let dbPromise = null;
let timer = null;
let delay = FIRST_RETRY_MS;
let flushing = null;
let started = false;
const listeners = new Set();
const inFlight = new Set(); // ids being sent by submit() on this page

function open() {
  dbPromise ||= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  }).catch((e) => {
    dbPromise = null;
    throw new Error(`this browser cannot keep entries offline (IndexedDB: ${e?.message || e})`);
  });
  return dbPromise;
}

async function tx(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const result = work(t.objectStore(STORE));
    t.oncomplete = () => resolve(result.result);
    t.onerror = () => reject(t.error);
  });
}

function changed() {
  for (const listener of listeners) listener();
}

/** Every kept entry, oldest first: {id, form, asset, values, time, state, errors, message}. */
export async function list() {
  const all = await tx('readonly', (s) => s.getAll());
  return all.sort((a, b) => a.time.localeCompare(b.time));
}

/** Keeps `entry` (replacing one with its id). */
export async function keep(entry) {
  await tx('readwrite', (s) => s.put(entry));
  changed();
}

/** Forgets the entry `id`. */
export async function drop(id) {
  await tx('readwrite', (s) => s.delete(id));
  changed();
}

/** Calls `listener()` whenever the outbox changes; returns an unsubscribe. */
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The request body for an entry. */
export function body(entry) {
  return { asset: entry.asset, values: entry.values, id: entry.id, time: entry.time };
}

/** POSTs one entry; resolves with the recorded entry or throws the ApiError. */
export function post(entry) {
  return send('POST', `/api/v1/forms/${encodeURIComponent(entry.form)}/entries`, body(entry));
}

/** Whether an error means "not now" (try again later) rather than "not like this". */
export function transient(e) {
  return e.code === 'unreachable' || e.status === 401 || e.status === 403 || e.status === 429 || e.status >= 500;
}

/** Sends every waiting entry, oldest first; stops at the first that cannot be sent now.
 *  Resolves with the number sent. */
export function flush() {
  flushing ||= (async () => {
    let sent = 0;
    try {
      for (const entry of await list()) {
        if (entry.state === 'refused' || inFlight.has(entry.id)) continue;
        try {
          await post(entry);
          await drop(entry.id);
          sent++;
        } catch (e) {
          if (transient(e)) {
            await keep({ ...entry, state: 'waiting', message: e.message });
            return sent;
          }
          await keep({ ...entry, state: 'refused', message: e.message, errors: e.errors.length ? e.errors : [{ field: e.field || '', message: e.message }] });
        }
      }
      delay = FIRST_RETRY_MS;
      return sent;
    } finally {
      flushing = null;
    }
  })();
  return flushing;
}

async function tick() {
  timer = null;
  let waiting = [];
  try {
    await flush();
    waiting = (await list()).filter((e) => e.state !== 'refused');
  } catch (e) {
    console.error(e);
  }
  if (waiting.length) {
    schedule(delay);
    delay = Math.min(delay * 2, MAX_RETRY_MS);
  }
}

/** Sends a new entry, kept on this device first so a closed tab loses nothing. Resolves
 *  with {recorded} (the gateway's entry) or {queued: true} when the gateway cannot take it
 *  now; throws the gateway's refusal (the entry is then forgotten: the form shows it). */
export async function submit(entry) {
  inFlight.add(entry.id);
  try {
    await keep({ ...entry, state: 'sending' });
    try {
      const recorded = await post(entry);
      await drop(entry.id);
      return { recorded };
    } catch (e) {
      if (!transient(e)) {
        await drop(entry.id);
        throw e;
      }
      await keep({ ...entry, state: 'waiting', message: e.message });
      schedule(delay);
      return { queued: true };
    }
  } finally {
    inFlight.delete(entry.id);
  }
}

/** Tries again in `ms` (sooner if already planned sooner). */
export function schedule(ms = FIRST_RETRY_MS) {
  if (timer) clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

/** Starts sending in the background (once per page load): now, when the link returns, and
 *  on the retry timer while entries wait. */
export function start() {
  if (started) return;
  started = true;
  onLink((up) => {
    if (up) {
      delay = FIRST_RETRY_MS;
      schedule(0);
    }
  });
  schedule(0);
}
