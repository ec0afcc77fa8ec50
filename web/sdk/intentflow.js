/**
 * intentflow capture SDK: browser behavioral signals -> batched POSTs to the collector.
 *
 * Dependency-free ES module; `web/sdk/build.mjs` turns this one file into the script-tag build
 * `intentflow.iife.js` (global `IntentFlow`). Every event follows docs/contracts.md §1
 * (`schemas/event.v1.json`): envelope fields, `page`, `context`, `flags`, `props` with units in the names.
 *
 * Wire format (what `POST {endpoint}` receives, as `text/plain;charset=UTF-8` so that neither
 * `sendBeacon` nor `fetch` needs a CORS preflight):
 *
 *     {"sent_at_ms": <int, client clock>, "events": [<event>, ...]}
 *
 * Each event also carries its own `sent_at_ms`, so a collector may also split the batch and handle
 * events one by one. `received_at_ms` is null and `ts_ms` equals `client_ts_ms` until the collector
 * stamps its clock and corrects skew.
 *
 * Usage:
 *     import { init } from '/sdk/intentflow.js';
 *     const tracker = init({ endpoint: '/v1/events', itemId: 'laptop-aurora-14' });
 *     tracker.track('add_to_cart', { item_id: 'laptop-aurora-14', quantity: 1, price: 1299 });
 *
 * Why one file of over 400 lines: the SDK ships as a single dependency-free module (and, built from it,
 * a single script tag: no bundler, no imports), so capture, batching, transport and retry live together.
 *
 * @module intentflow
 */

/** Event schema version sent in `schema_version` (docs/contracts.md §1). */
export const SCHEMA_VERSION = 1;

/**
 * Largest body, in bytes, that one beacon or keep-alive fetch may carry: 64 KiB = 65536 bytes.
 * Source: the Fetch standard caps the bytes of all in-flight `keepalive` requests of a page at
 * 64 KiB ("inflight keepalive bytes" check), which the Beacon spec's `sendBeacon` inherits;
 * Chromium and Firefox return `false` from `sendBeacon` above it.
 */
export const BEACON_LIMIT_BYTES = 64 * 1024;

/** A session ends after this much inactivity: 30 min (docs/contracts.md §1 `session_id`). */
export const SESSION_INACTIVITY_MS = 30 * 60 * 1000;

/**
 * Default batching: flush when this many events are queued (ours: keeps each POST a few KB),
 * after this many ms (ours: a fraction of the seed article's 200 ms end-to-end budget),
 * and at once for the immediate types (a click is the strongest intent signal; waiting hurts latency).
 */
export const DEFAULT_MAX_BATCH_EVENTS = 25;
export const DEFAULT_FLUSH_INTERVAL_MS = 100;
export const DEFAULT_IMMEDIATE_TYPES = ['click', 'add_to_cart', 'purchase'];

/**
 * Retries after a failed send (network error, 5xx, 429): the first after this many ms, each next one
 * after twice the previous wait, never more than `RETRY_MAX_DELAY_MS` apart, while the page lives. The
 * job's allowed lateness is computed from these (udfs/limits.py `ALLOWED_LATENESS_MS`): keep them equal
 * to `SDK_RETRY_FIRST_DELAY_MS` / `SDK_RETRY_MAX_DELAY_MS` there (tests/unit/test_lateness.py).
 */
export const RETRY_FIRST_DELAY_MS = 500;
export const RETRY_MAX_DELAY_MS = 30000;

/**
 * Mouse-trajectory sampling (ours; there is no standard): a stretch ends after this long without
 * pointer movement, or at the max duration / sample count; a pause is a run of samples slower than
 * `PAUSE_SPEED_PX_S` lasting at least `PAUSE_MIN_MS`; stretches with fewer samples are not sent.
 */
export const TRAJECTORY_IDLE_END_MS = 400;
export const TRAJECTORY_MAX_DURATION_MS = 5000;
export const TRAJECTORY_MAX_SAMPLES = 300;
export const TRAJECTORY_MIN_SAMPLES = 4;
export const PAUSE_SPEED_PX_S = 20;
export const PAUSE_MIN_MS = 100;

/**
 * Edge scoring (option `edge: true`): an `intent` event is sent after a provisional action, and after
 * a score that moved by at least this much since the last one sent (ours: 0.05 keeps it to a few per
 * session while the rules' score thresholds are whole tenths, rules/default.v1.json).
 */
export const EDGE_INTENT_MIN_SCORE_DELTA = 0.05;

/**
 * Edge scoring: how often a visible page asks the collector for a newer ruleset and model (conditional
 * GETs, a 304 when unchanged). Ours: 30 s; the job applies a published ruleset within seconds and a new
 * model within 5 s, so a page's provisional decisions lag the server's by at most about half a minute.
 */
export const EDGE_REFRESH_MS = 30_000;

/** Scroll sentinels every this many percent of the document height (IntersectionObserver). */
export const SCROLL_SENTINEL_STEP_PCT = 5;

/** Strings longer than this many characters are cut (keeps any single event far below the beacon limit). */
export const MAX_STRING_CHARS = 2048;

/** Storage keys: sessionStorage for the session, localStorage for the anonymous id and the unsent outbox. */
export const STORAGE_KEYS = Object.freeze({
  session: 'intentflow:session',
  anonymous: 'intentflow:anonymous_id',
  outbox: 'intentflow:outbox',
  edge: 'intentflow:edge',
});

/** Selector of tracked elements: any element with `data-if-id` or `data-if-role`. */
export const TRACKED_SELECTOR = '[data-if-id],[data-if-role]';

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested in tests/unit/test_sdk.mjs)
// ---------------------------------------------------------------------------------------------

/**
 * Current time as integer epoch ms on the client clock: `performance.timeOrigin + performance.now()`
 * (monotonic within the page, unlike `Date.now()`), falling back to `Date.now()`.
 * @returns {number} epoch ms
 */
export function nowMs() {
  const perf = globalThis.performance;
  if (perf && typeof perf.now === 'function' && typeof perf.timeOrigin === 'number' && perf.timeOrigin > 0) {
    return Math.round(perf.timeOrigin + perf.now());
  }
  return Date.now();
}

/**
 * A random RFC 4122 v4 UUID: `crypto.randomUUID()` where available (secure contexts), else built
 * from `crypto.getRandomValues` (plain-http non-localhost pages), else from Math.random.
 * @returns {string}
 */
export function uuid4() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Summary of one stretch of pointer samples (docs/contracts.md §1 `mouse_trajectory`).
 *
 * @param {Array<{t_ms:number,x_px:number,y_px:number}>} samples in time order (duplicate timestamps are skipped)
 * @param {{pauseSpeedPxS?:number, pauseMinMs?:number}} [options]
 * @returns {{path_length_px:number, straightness:number, mean_speed_px_s:number, jerk_px_s3:number,
 *            pause_count:number, sample_count:number, duration_ms:number}}
 *   - path_length_px: sum of the straight segments between consecutive samples;
 *   - straightness: start-to-end distance / path length, 0-1 (0 when the pointer did not move);
 *   - mean_speed_px_s: path length / duration;
 *   - jerk_px_s3: mean magnitude of the third time derivative of position (finite differences;
 *     0 with fewer than 4 samples);
 *   - pause_count: maximal runs of segments slower than pauseSpeedPxS lasting >= pauseMinMs;
 *   - sample_count: samples used; duration_ms: last minus first sample time.
 */
export function summarizeTrajectory(samples, options = {}) {
  const pauseSpeed = options.pauseSpeedPxS ?? PAUSE_SPEED_PX_S;
  const pauseMin = options.pauseMinMs ?? PAUSE_MIN_MS;
  const pts = [];
  for (const s of samples || []) {
    if (!Number.isFinite(s.t_ms) || !Number.isFinite(s.x_px) || !Number.isFinite(s.y_px)) continue;
    if (pts.length && s.t_ms <= pts[pts.length - 1].t_ms) continue;
    pts.push(s);
  }
  const n = pts.length;
  const out = { path_length_px: 0, straightness: 0, mean_speed_px_s: 0, jerk_px_s3: 0, pause_count: 0,
    sample_count: n, duration_ms: 0 };
  if (n < 2) return out;
  const vel = []; // per segment: {vx, vy, t_mid_s, dt_s}
  let path = 0;
  let pauseRunMs = 0;
  let pauses = 0;
  for (let i = 1; i < n; i++) {
    const dx = pts[i].x_px - pts[i - 1].x_px;
    const dy = pts[i].y_px - pts[i - 1].y_px;
    const dtMs = pts[i].t_ms - pts[i - 1].t_ms;
    const dist = Math.hypot(dx, dy);
    path += dist;
    const dtS = dtMs / 1000;
    vel.push({ vx: dx / dtS, vy: dy / dtS, t: (pts[i].t_ms + pts[i - 1].t_ms) / 2000 });
    if (dist / dtS < pauseSpeed) {
      pauseRunMs += dtMs;
    } else {
      if (pauseRunMs >= pauseMin) pauses++;
      pauseRunMs = 0;
    }
  }
  if (pauseRunMs >= pauseMin) pauses++;
  const durationMs = pts[n - 1].t_ms - pts[0].t_ms;
  const disp = Math.hypot(pts[n - 1].x_px - pts[0].x_px, pts[n - 1].y_px - pts[0].y_px);
  const diff = (arr) => {
    const res = [];
    for (let i = 1; i < arr.length; i++) {
      const dt = arr[i].t - arr[i - 1].t;
      res.push({ vx: (arr[i].vx - arr[i - 1].vx) / dt, vy: (arr[i].vy - arr[i - 1].vy) / dt, t: (arr[i].t + arr[i - 1].t) / 2 });
    }
    return res;
  };
  const jerk = diff(diff(vel));
  const jerkMean = jerk.length ? jerk.reduce((a, j) => a + Math.hypot(j.vx, j.vy), 0) / jerk.length : 0;
  out.path_length_px = round3(path);
  out.straightness = path > 0 ? round3(Math.min(1, disp / path)) : 0;
  out.mean_speed_px_s = durationMs > 0 ? round3(path / (durationMs / 1000)) : 0;
  out.jerk_px_s3 = round3(jerkMean);
  out.pause_count = pauses;
  out.duration_ms = Math.round(durationMs);
  return out;
}

/** `performance.now()` in ms (monotonic, sub-ms), or Date.now() without it. */
function perfNowMs() {
  const perf = globalThis.performance;
  return perf && typeof perf.now === 'function' ? perf.now() : Date.now();
}

/** Origin of an absolute collector URL ('' for a relative one: same origin as the page). */
function edgeBaseFrom(endpoint) {
  const m = /^(https?:\/\/[^/]+)/i.exec(endpoint || '');
  return m ? m[1] : '';
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

/**
 * UTF-8 byte length of a string (what the beacon limit counts).
 * @param {string} text
 * @returns {number} bytes
 */
export function utf8Bytes(text) {
  if (typeof TextEncoder !== 'undefined') return new TextEncoder().encode(text).length;
  return unescape(encodeURIComponent(text)).length;
}

/**
 * Serialize queued events into request bodies of at most `maxBytes` UTF-8 bytes each, in order,
 * each body `{"sent_at_ms":..., "events":[...]}`; every event gets `sent_at_ms` stamped.
 * An event that alone exceeds `maxBytes` gets a body of its own with `oversize: true` (the caller
 * sends it with a non-keep-alive fetch; the SDK cuts strings so this does not happen in practice).
 *
 * @param {object[]} events events of the contract (mutated: `sent_at_ms` set)
 * @param {number} [maxBytes=BEACON_LIMIT_BYTES]
 * @param {number} [sentAtMs=nowMs()] epoch ms, client clock
 * @returns {{body:string, bytes:number, eventIds:string[], oversize:boolean}[]}
 */
export function splitIntoBodies(events, maxBytes = BEACON_LIMIT_BYTES, sentAtMs = nowMs()) {
  const head = `{"sent_at_ms":${sentAtMs},"events":[`;
  const tail = ']}';
  const overhead = utf8Bytes(head) + utf8Bytes(tail);
  const bodies = [];
  let parts = [];
  let ids = [];
  let size = overhead;
  const close = (oversize = false) => {
    if (!parts.length) return;
    const body = head + parts.join(',') + tail;
    bodies.push({ body, bytes: utf8Bytes(body), eventIds: ids, oversize });
    parts = [];
    ids = [];
    size = overhead;
  };
  for (const ev of events) {
    ev.sent_at_ms = sentAtMs;
    const json = JSON.stringify(ev);
    const bytes = utf8Bytes(json);
    if (overhead + bytes > maxBytes) {
      close();
      parts.push(json);
      ids.push(ev.event_id);
      close(true);
      continue;
    }
    const extra = bytes + (parts.length ? 1 : 0);
    if (size + extra > maxBytes) close();
    size += bytes + (parts.length ? 1 : 0);
    parts.push(json);
    ids.push(ev.event_id);
  }
  close();
  return bodies;
}

/**
 * Scroll depth of a viewport over a document: the share of the document that has been inside the
 * viewport, `(offset + viewport height) / document height`, in percent.
 *
 * @param {number} offsetPx scrollY, CSS px
 * @param {number} viewportHPx window.innerHeight, CSS px
 * @param {number} documentHeightPx scrollHeight of the document, CSS px
 * @returns {{scroll_depth_pct:number, scroll_depth_pct_raw:number}} clamped 0-100 and raw (can
 *   exceed 100 when the document shrank, or be NaN-free 100 on a page shorter than the viewport)
 */
export function scrollDepth(offsetPx, viewportHPx, documentHeightPx) {
  const height = Math.max(0, documentHeightPx || 0);
  if (height <= 0) return { scroll_depth_pct: 100, scroll_depth_pct_raw: 100 };
  const raw = ((Math.max(0, offsetPx || 0) + Math.max(0, viewportHPx || 0)) / height) * 100;
  const rawRounded = Math.round(raw * 100) / 100;
  return { scroll_depth_pct: Math.min(100, Math.max(0, rawRounded)), scroll_depth_pct_raw: rawRounded };
}

/**
 * Device class hint from what the browser says about itself (the collector decides for good from the
 * user agent): `mobile`/`tablet`/`desktop`/`bot`/`unknown`.
 * @param {{userAgent?:string, uaMobile?:boolean|null, maxTouchPoints?:number, screenMinPx?:number}} hints
 * @returns {string}
 */
export function deviceClassHint(hints) {
  const ua = hints.userAgent || '';
  if (/bot|crawl|spider|headless/i.test(ua)) return 'bot';
  if (hints.uaMobile === true || /Mobi|iPhone|Android.+Mobile/i.test(ua)) return 'mobile';
  if (/iPad|Tablet|Android/i.test(ua) || ((hints.maxTouchPoints || 0) > 1 && (hints.screenMinPx || 0) >= 600)) return 'tablet';
  if (ua) return 'desktop';
  return 'unknown';
}

/**
 * Cut a string to `MAX_STRING_CHARS` characters (null stays null).
 * @param {string|null|undefined} s
 * @returns {string|null}
 */
/**
 * The experiment arm of a visitor, as the job assigns it (`udfs.experiments.arm_for`): `holdout` when
 * u * 100 < holdoutPct, with u = the first 8 bytes of SHA-256("<experiment id>|<anonymous id>") / 2^64,
 * else `personalized`. Uses WebCrypto (`crypto.subtle`, secure contexts only).
 * @returns {Promise<string>} `holdout` or `personalized`
 */
export async function armFor(experimentId, anonymousId, holdoutPct) {
  if (!holdoutPct || !anonymousId) return 'personalized';
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${experimentId}|${anonymousId}`));
  const u = Number(new DataView(digest).getBigUint64(0, false)) / 18446744073709551616;
  return u * 100 < holdoutPct ? 'holdout' : 'personalized';
}

export function cut(s) {
  if (s === null || s === undefined) return null;
  const str = String(s);
  return str.length > MAX_STRING_CHARS ? str.slice(0, MAX_STRING_CHARS) : str;
}

// ---------------------------------------------------------------------------------------------
// Storage (sessionStorage / localStorage may throw: private mode, disabled storage)
// ---------------------------------------------------------------------------------------------

function storageGet(store, key) {
  try { return globalThis[store] ? globalThis[store].getItem(key) : null; } catch (_e) { return null; }
}

function storageSet(store, key, value) {
  try { if (globalThis[store]) globalThis[store].setItem(key, value); } catch (_e) { /* storage full or disabled */ }
}

function storageRemove(store, key) {
  try { if (globalThis[store]) globalThis[store].removeItem(key); } catch (_e) { /* disabled */ }
}

/**
 * The session id, rolled over after `inactivityMs` without an event; kept in sessionStorage
 * (`STORAGE_KEYS.session`, JSON `{id, last_activity_ms, seq, started_at_ms}`).
 *
 * @param {number} tMs epoch ms now
 * @param {number} [inactivityMs=SESSION_INACTIVITY_MS]
 * @param {object|null} [stored] parsed stored state (defaults to reading sessionStorage)
 * @returns {{id:string, last_activity_ms:number, seq:number, started_at_ms:number, rolled:boolean}}
 */
export function resolveSession(tMs, inactivityMs = SESSION_INACTIVITY_MS, stored = undefined) {
  let state = stored;
  if (state === undefined) {
    try { state = JSON.parse(storageGet('sessionStorage', STORAGE_KEYS.session) || 'null'); } catch (_e) { state = null; }
  }
  if (state && typeof state.id === 'string' && Number.isFinite(state.last_activity_ms)
      && tMs - state.last_activity_ms < inactivityMs) {
    return { id: state.id, last_activity_ms: state.last_activity_ms, seq: state.seq | 0,
      started_at_ms: state.started_at_ms || state.last_activity_ms, rolled: false };
  }
  return { id: uuid4(), last_activity_ms: tMs, seq: 0, started_at_ms: tMs, rolled: !!state };
}

// ---------------------------------------------------------------------------------------------
// The tracker
// ---------------------------------------------------------------------------------------------

/**
 * Start capturing. Returns the tracker (one per page; a second `init` returns the first).
 *
 * @param {object} [options]
 * @param {string} [options.endpoint='/v1/events'] collector URL (POST)
 * @param {string|null} [options.itemId] product on the page (`page.item_id`); default from
 *   `<meta name="intentflow:item-id">`
 * @param {string|null} [options.pageType] page type (`page.type`): `administrative`, `informational` or
 *   `product_related` (the UCI Online Shoppers page categories; anything else is sent as null); default from
 *   `<meta name="intentflow:page-type">`
 * @param {string|null} [options.userId] logged-in user id
 * @param {{analytics:boolean, personalization:boolean}} [options.consent] default both true; with
 *   `analytics: false` nothing is captured or sent
 * @param {number} [options.maxBatchEvents=DEFAULT_MAX_BATCH_EVENTS]
 * @param {number} [options.flushIntervalMs=DEFAULT_FLUSH_INTERVAL_MS]
 * @param {string[]} [options.immediateTypes=DEFAULT_IMMEDIATE_TYPES] types that flush at once
 * @param {number} [options.maxBodyBytes=BEACON_LIMIT_BYTES] per-request body limit
 * @param {number} [options.sessionInactivityMs=SESSION_INACTIVITY_MS]
 * @param {boolean} [options.autoPageView=true] send `page_view` at start
 * @param {boolean} [options.mouse=true] sample mouse trajectories
 * @param {(info:object)=>void} [options.onSend] called after each request with
 *   `{transport, bytes, event_ids, ok, status}` (debugging and tests)
 * @param {boolean} [options.edge=false] score in the browser (web/sdk/edge.js: the same features,
 *   model and rules as the server, loaded from the collector) and report a provisional action at once;
 *   needs personalization consent. The server stays the authority (docs/edge.md).
 * @param {string} [options.edgeBaseUrl] collector origin for the model, rules, runtime and edge.js;
 *   default: the origin of `endpoint` when it is absolute, else this page's
 * @param {(decision:object)=>void} [options.onEdgeDecision] called with each provisional action:
 *   `{action, params, rule_id, rule_version, rules_version, event_ts_ms, event_id, intent_score,
 *   model_version, feature_hash, edge_latency_ms, source: 'edge'}`
 * @returns {Tracker}
 */
export function init(options = {}) {
  if (globalThis.__intentflowTracker) return globalThis.__intentflowTracker;
  const tracker = new Tracker(options);
  globalThis.__intentflowTracker = tracker;
  tracker.start();
  return tracker;
}

/** Page types of the contract (`page.type`, udfs/contract.py PAGE_TYPES). */
export const PAGE_TYPES = ['administrative', 'informational', 'product_related'];

/** `page.type` for an option value: one of {@link PAGE_TYPES}, else null. @returns {string|null} */
export function pageTypeOf(value) {
  return PAGE_TYPES.includes(value) ? value : null;
}

/** Capture state for one page. Create with {@link init}. */
export class Tracker {
  constructor(options = {}) {
    const doc = globalThis.document;
    const meta = doc && doc.querySelector ? doc.querySelector('meta[name="intentflow:item-id"]') : null;
    const typeMeta = doc && doc.querySelector ? doc.querySelector('meta[name="intentflow:page-type"]') : null;
    this.options = {
      endpoint: options.endpoint || '/v1/events',
      itemId: options.itemId !== undefined ? options.itemId : (meta ? meta.getAttribute('content') : null),
      pageType: pageTypeOf(options.pageType !== undefined ? options.pageType : (typeMeta ? typeMeta.getAttribute('content') : null)),
      userId: options.userId ?? null,
      consent: options.consent || { analytics: true, personalization: true },
      maxBatchEvents: options.maxBatchEvents || DEFAULT_MAX_BATCH_EVENTS,
      flushIntervalMs: options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS,
      immediateTypes: options.immediateTypes || DEFAULT_IMMEDIATE_TYPES,
      maxBodyBytes: options.maxBodyBytes || BEACON_LIMIT_BYTES,
      sessionInactivityMs: options.sessionInactivityMs || SESSION_INACTIVITY_MS,
      autoPageView: options.autoPageView !== false,
      mouse: options.mouse !== false,
      onSend: options.onSend || null,
      edge: options.edge === true,
      edgeBaseUrl: options.edgeBaseUrl ?? edgeBaseFrom(options.endpoint || '/v1/events'),
      onEdgeDecision: options.onEdgeDecision || null,
    };
    /** Edge scoring: the engine once loaded (null before, or when loading failed: see `edgeError`). */
    this.edge = null;
    /** Promise of the engine (null without `edge: true`). */
    this.edgeReady = null;
    this._edgeBacklog = null;
    this._edgeLastSentScore = null;
    /** Events waiting to be sent, oldest first. */
    this.queue = [];
    /** Counters: events captured/sent, requests by transport, failures. */
    this.stats = { captured: 0, sent_events: 0, requests: 0, beacons: 0, fetches: 0, failures: 0, resent_from_outbox: 0 };
    this._timer = null;
    this._sending = false;
    this._retryDelayMs = 0;
    this._hovers = new Map(); // element -> {visibleMs, sinceMs|null}
    this._forms = new Map(); // form_id -> {submitted, touched}
    this._visibleMs = 0;
    this._visibleSinceMs = null;
    this._scrollMaxOffsetPx = 0;
    this._traj = { samples: [], lastMoveMs: 0, pointer: null, raf: 0 };
    this._listeners = [];
  }

  // --- identity -------------------------------------------------------------------------------

  /** The anonymous id (localStorage, created once per browser profile). @returns {string} */
  get anonymousId() {
    if (!this._anonymousId) {
      let id = storageGet('localStorage', STORAGE_KEYS.anonymous);
      if (!id) {
        id = uuid4();
        storageSet('localStorage', STORAGE_KEYS.anonymous, id);
      }
      this._anonymousId = id;
    }
    return this._anonymousId;
  }

  /** The current session id (rolls over after 30 min of inactivity). @returns {string} */
  get sessionId() {
    return this._session(nowMs(), false).id;
  }

  _session(tMs, touch) {
    let stored = null;
    try { stored = JSON.parse(storageGet('sessionStorage', STORAGE_KEYS.session) || 'null'); } catch (_e) { stored = null; }
    // without sessionStorage (disabled, private mode) the session lives in memory for this page
    const s = resolveSession(tMs, this.options.sessionInactivityMs, stored || this._memSession || null);
    if (touch) {
      s.last_activity_ms = tMs;
      s.seq += 1;
    }
    this._memSession = { id: s.id, last_activity_ms: s.last_activity_ms, seq: s.seq, started_at_ms: s.started_at_ms };
    storageSet('sessionStorage', STORAGE_KEYS.session, JSON.stringify(this._memSession));
    return s;
  }

  // --- event building ---------------------------------------------------------------------------

  /** Context of docs/contracts.md §1, as far as the browser knows it. @returns {object} */
  context() {
    const nav = globalThis.navigator || {};
    const scr = globalThis.screen || {};
    const conn = nav.connection || null;
    let timezone = null;
    try { timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch (_e) { /* no Intl */ }
    const deviceClass = deviceClassHint({
      userAgent: nav.userAgent,
      uaMobile: nav.userAgentData ? nav.userAgentData.mobile : null,
      maxTouchPoints: nav.maxTouchPoints,
      screenMinPx: Math.min(scr.width || 0, scr.height || 0),
    });
    return {
      user_agent: cut(nav.userAgent || null),
      device_class: deviceClass,
      is_bot: deviceClass === 'bot' || nav.webdriver === true, // automation says so itself
      viewport_w_px: Math.round(globalThis.innerWidth || 0),
      viewport_h_px: Math.round(globalThis.innerHeight || 0),
      screen_w_px: Math.round(scr.width || 0),
      screen_h_px: Math.round(scr.height || 0),
      network: {
        effective_type: conn && conn.effectiveType ? conn.effectiveType : null,
        rtt_ms: conn && Number.isFinite(conn.rtt) ? conn.rtt : null,
        downlink_mbps: conn && Number.isFinite(conn.downlink) ? conn.downlink : null,
        save_data: conn ? !!conn.saveData : null,
      },
      timezone,
      locale: nav.language || null,
      geo: { country: null, region: null },
      consent: { analytics: !!this.options.consent.analytics, personalization: !!this.options.consent.personalization },
      ip_prefix: null,
    };
  }

  /** `page` of docs/contracts.md §1. @returns {object} */
  page() {
    const loc = globalThis.location || {};
    const doc = globalThis.document;
    const contentIds = [];
    if (doc && doc.querySelectorAll) {
      for (const el of doc.querySelectorAll('[data-if-content]')) contentIds.push(el.getAttribute('data-if-content'));
    }
    return {
      url: cut(loc.href ? loc.href.split('#')[0] : null),
      path: cut(loc.pathname || null),
      item_id: this.options.itemId ?? null,
      type: this.options.pageType,
      content_ids: contentIds,
      referrer: cut(doc && doc.referrer ? doc.referrer : null),
    };
  }

  /**
   * Queue one event of the contract.
   * @param {string} type one of the contract's types
   * @param {object} props type-specific fields (units in the names)
   * @param {number} [tMs=nowMs()] epoch ms when it happened (client clock). Event times never go
   *   backwards in capture order: a time before the newest captured one is raised to it (a hover closed
   *   by a click is stamped with the click's time after a trajectory stamped a ms later), so the job's
   *   event-time order is the capture order, which the edge engine relies on.
   * @returns {object|null} the event as queued; null (nothing captured) without analytics consent
   */
  track(type, props = {}, tMs = nowMs()) {
    if (this.options.consent.analytics === false) return null; // no consent: capture nothing
    if (this._newestTsMs !== undefined && tMs < this._newestTsMs) tMs = this._newestTsMs;
    this._newestTsMs = tMs;
    const session = this._session(tMs, true);
    const event = {
      event_id: uuid4(),
      schema_version: SCHEMA_VERSION,
      type,
      session_id: session.id,
      anonymous_id: this.anonymousId,
      user_id: this.options.userId,
      seq: session.seq,
      client_ts_ms: Math.round(tMs),
      sent_at_ms: null,
      received_at_ms: null,
      ts_ms: Math.round(tMs),
      page: this._pageCache || (this._pageCache = this.page()),
      context: this._contextCache || (this._contextCache = this.context()),
      flags: [],
      props,
    };
    this.queue.push(event);
    this.stats.captured += 1;
    if (this.options.edge && type !== 'intent') this._edgeEvent(event, perfNowMs());
    /** `client_ts_ms` of the newest event captured (epoch ms, client clock). */
    this.lastCapturedTsMs = event.client_ts_ms;
    if (this.options.immediateTypes.includes(type) || this.queue.length >= this.options.maxBatchEvents) {
      this.flush();
    } else if (!this._timer) {
      this._timer = setTimeout(() => { this._timer = null; this.flush(); }, this.options.flushIntervalMs);
    }
    return event;
  }

  /**
   * Log that the page rendered an arm's treatment of a decision of `GET /v1/decision`: an `exposure`
   * event (docs/experiments.md). For the `personalized` arm, the personalized content the action showed;
   * for the `holdout` arm (`source: "holdout"`), the default layout the page kept. The job counts a
   * session's conversions for its arm from its first exposure on. A decision without `experiment_id`
   * is in no experiment: nothing is sent. At most once per experiment, arm and content id per tracker.
   * @param {object} decision the decision API's answer (`experiment_id`, `arm`)
   * @param {string} [contentId='default'] what was rendered (a content block id)
   * @returns {object|null} the exposure event, or null when nothing was sent
   */
  exposure(decision, contentId = 'default') {
    if (!decision || !decision.experiment_id || !decision.arm) return null;
    const key = `${decision.experiment_id}|${decision.arm}|${contentId}`;
    if (!this._exposed) this._exposed = new Set();
    if (this._exposed.has(key)) return null;
    this._exposed.add(key);
    return this.track('exposure', { experiment_id: cut(String(decision.experiment_id)),
      variant: cut(String(decision.arm)), content_id: cut(String(contentId)) });
  }

  // --- sending ----------------------------------------------------------------------------------

  /**
   * Send everything queued. While the page is visible this uses `fetch(keepalive)` one request at a
   * time, so a failure (network error, 5xx, 429) puts the same events (same `event_id`s) back at the
   * head of the queue and retries with backoff. On `visibilitychange` to hidden and on `pagehide`
   * call with `{unloading: true}`: then `sendBeacon` carries each body (fallback `fetch(keepalive)`),
   * and what neither accepts (the 64 KiB in-flight quota is shared by all of them) is saved to the
   * localStorage outbox and sent by the next page of the site.
   *
   * @param {{unloading?: boolean}} [opts]
   * @returns {Promise<void>} resolves when the requests of this flush are done (or handed to the browser)
   */
  flush(opts = {}) {
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (opts.unloading) return Promise.resolve(this._flushUnloading());
    if (this._sending || !this.queue.length) return this._sendingPromise || Promise.resolve();
    this._sendingPromise = this._flushLive().finally(() => { this._sending = false; this._sendingPromise = null; });
    return this._sendingPromise;
  }

  async _flushLive() {
    this._sending = true;
    while (this.queue.length) {
      const events = this.queue.splice(0, this.queue.length);
      const bodies = splitIntoBodies(events, this.options.maxBodyBytes);
      let failedAt = -1;
      for (let i = 0; i < bodies.length; i++) {
        const ok = await this._post(bodies[i], !bodies[i].oversize);
        if (!ok) { failedAt = i; break; }
      }
      if (failedAt >= 0) {
        const unsent = new Set(bodies.slice(failedAt).flatMap((b) => b.eventIds));
        const failed = events.filter((e) => unsent.has(e.event_id));
        if (this._unloading) {
          // the page is going away: the next page sends them (same event ids; the collector and the
          // job drop the copy if the cancelled request did arrive)
          this._saveOutbox(failed);
          return;
        }
        this.queue.unshift(...failed);
        this._retryDelayMs = Math.min(RETRY_MAX_DELAY_MS, this._retryDelayMs ? this._retryDelayMs * 2 : RETRY_FIRST_DELAY_MS);
        if (!this._timer) this._timer = setTimeout(() => { this._timer = null; this.flush(); }, this._retryDelayMs);
        return;
      }
      this._retryDelayMs = 0;
    }
  }

  /**
   * POST one body; `keepalive` lets it outlive the page. A keep-alive fetch is refused (TypeError)
   * while other keep-alive bodies still hold the page's 64 KiB quota, so a refused one is tried
   * again at once without keep-alive (same body, same event ids: never a duplicate downstream).
   * @returns {Promise<boolean>} true when the collector answered 2xx
   */
  async _post(b, keepalive) {
    const fetchFn = globalThis.fetch;
    let ok = false;
    let status = 0;
    const attempt = async (ka) => {
      const res = await fetchFn(this.options.endpoint, {
        method: 'POST', body: b.body, keepalive: ka, credentials: 'omit',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      });
      status = res.status;
      ok = res.ok;
    };
    try {
      await attempt(keepalive);
    } catch (_e) {
      ok = false;
      // during unload the page's fetches are cancelled: the keep-alive one may still arrive, so do
      // not send a second copy now (what failed goes to the outbox, see _flushLive)
      if (keepalive && !this._unloading) {
        try { await attempt(false); } catch (_e2) { ok = false; }
      }
    }
    this.stats.requests += 1;
    this.stats.fetches += 1;
    if (ok) this.stats.sent_events += b.eventIds.length; else this.stats.failures += 1;
    this._notify({ transport: 'fetch', bytes: b.bytes, event_ids: b.eventIds, ok, status });
    return ok;
  }

  _flushUnloading() {
    const events = this.queue.splice(0, this.queue.length);
    if (!events.length) return;
    const bodies = splitIntoBodies(events, this.options.maxBodyBytes);
    const nav = globalThis.navigator || {};
    const byId = new Map(events.map((e) => [e.event_id, e]));
    for (const b of bodies) {
      let handed = false;
      if (!b.oversize && typeof nav.sendBeacon === 'function') {
        try { handed = nav.sendBeacon(this.options.endpoint, b.body); } catch (_e) { handed = false; }
      }
      this.stats.requests += 1;
      if (handed) {
        this.stats.beacons += 1;
        this.stats.sent_events += b.eventIds.length;
        this._notify({ transport: 'beacon', bytes: b.bytes, event_ids: b.eventIds, ok: true, status: null });
        continue;
      }
      // Refused (over the shared 64 KiB in-flight quota, or no sendBeacon): keep the events in the
      // localStorage outbox first, then try fetch(keepalive); if it succeeds while the page still
      // lives they leave the outbox, else the next page sends them again with the same event_ids.
      this._saveOutbox(b.eventIds.map((id) => byId.get(id)));
      this.stats.fetches += 1;
      this._notify({ transport: 'beacon_refused', bytes: b.bytes, event_ids: b.eventIds, ok: false, status: null });
      if (typeof globalThis.fetch !== 'function') { this.stats.failures += 1; continue; }
      let pending;
      try {
        pending = globalThis.fetch(this.options.endpoint, { method: 'POST', body: b.body, keepalive: !b.oversize,
          credentials: 'omit', headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
      } catch (_e) {
        pending = Promise.reject(_e);
      }
      pending.then((res) => {
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        this._dropFromOutbox(b.eventIds);
        this.stats.sent_events += b.eventIds.length;
        this._notify({ transport: 'fetch_keepalive', bytes: b.bytes, event_ids: b.eventIds, ok: true, status: res.status });
      }).catch(() => {
        this.stats.failures += 1;
        this._notify({ transport: 'fetch_keepalive', bytes: b.bytes, event_ids: b.eventIds, ok: false, status: null });
      });
    }
  }

  _dropFromOutbox(eventIds) {
    const drop = new Set(eventIds);
    let saved = [];
    try { saved = JSON.parse(storageGet('localStorage', STORAGE_KEYS.outbox) || '[]'); } catch (_e) { saved = []; }
    const kept = saved.filter((e) => !drop.has(e.event_id));
    if (kept.length) storageSet('localStorage', STORAGE_KEYS.outbox, JSON.stringify(kept));
    else storageRemove('localStorage', STORAGE_KEYS.outbox);
  }

  _saveOutbox(events) {
    let saved = [];
    try { saved = JSON.parse(storageGet('localStorage', STORAGE_KEYS.outbox) || '[]'); } catch (_e) { saved = []; }
    const seen = new Set(saved.map((e) => e.event_id));
    for (const e of events) if (!seen.has(e.event_id)) saved.push(e);
    storageSet('localStorage', STORAGE_KEYS.outbox, JSON.stringify(saved.slice(-2000)));
  }

  _loadOutbox() {
    let saved = [];
    try { saved = JSON.parse(storageGet('localStorage', STORAGE_KEYS.outbox) || '[]'); } catch (_e) { saved = []; }
    storageRemove('localStorage', STORAGE_KEYS.outbox);
    if (Array.isArray(saved) && saved.length) {
      this.queue.unshift(...saved);
      this.stats.resent_from_outbox += saved.length;
    }
  }

  // --- edge scoring -----------------------------------------------------------------------------

  /** Load web/sdk/edge.js and its model, rules and runtime from the collector; events captured
   * meanwhile are kept and replayed into the engine once it is ready. */
  _startEdge() {
    const base = this.options.edgeBaseUrl;
    this._edgeBacklog = [];
    this.edgeReady = import(`${base}/sdk/edge.js`)
      .then((mod) => mod.loadEdge({ baseUrl: base }))
      .then(({ engine, timings_ms: timingsMs, bytes }) => {
        // the session's features so far, from its earlier pages (the server's session spans pages too)
        let saved = null;
        try { saved = JSON.parse(storageGet('sessionStorage', STORAGE_KEYS.edge) || 'null'); } catch (_e) { saved = null; }
        if (saved && saved.features && saved.features.session_id === this.sessionId) engine.restore(saved);
        this.edge = engine;
        this._edgeRefreshTimer = setInterval(() => {
          if (globalThis.document && globalThis.document.visibilityState === 'hidden') return;
          engine.refresh().catch((err) => { this.edgeError = String(err && err.message ? err.message : err); });
        }, EDGE_REFRESH_MS);
        /** How loading went: phases in ms, JSON sizes in bytes. */
        this.edgeLoad = { timings_ms: timingsMs, bytes };
        const backlog = this._edgeBacklog || [];
        this._edgeBacklog = null;
        for (const [event, capturedAt] of backlog) this._edgeEvent(event, capturedAt);
        return engine;
      })
      .catch((err) => {
        this.edgeError = String(err && err.message ? err.message : err);
        this._edgeBacklog = null;
        return null; // capture goes on; only the provisional actions are missing
      });
  }

  /** Keep the edge state for the next page of this session (sessionStorage, `STORAGE_KEYS.edge`). */
  _saveEdge() {
    if (!this.edge) return;
    try { storageSet('sessionStorage', STORAGE_KEYS.edge, JSON.stringify(this.edge.snapshot())); } catch (_e) { /* full */ }
  }

  _edgeEvent(event, capturedAt) {
    if (!this.edge) {
      if (this._edgeBacklog) this._edgeBacklog.push([event, capturedAt]);
      return;
    }
    this.edge.onEvent(event, capturedAt).then((r) => { if (r) this._edgeResult(r); })
      .catch((err) => { this.edgeError = String(err && err.message ? err.message : err); });
  }

  /**
   * This visitor's arm in the edge ruleset's experiment (docs/experiments.md): `personalized` without a
   * holdout; null while the hash is computed (asynchronously, once per experiment) or where WebCrypto
   * is missing: no provisional action until the arm is known.
   */
  _edgeArm() {
    const exp = this.edge && this.edge.rules && this.edge.rules.experiment;
    if (!exp || !exp.holdout_pct) return 'personalized';
    const key = `${exp.id}|${exp.holdout_pct}|${this.anonymousId}`;
    if (this._armKey !== key) {
      this._armKey = key;
      this._arm = null;
      /** Settles once the arm is known (or could not be computed). */
      this._armPromise = armFor(exp.id, this.anonymousId, exp.holdout_pct)
        .then((arm) => { if (this._armKey === key) this._arm = arm; })
        .catch(() => { /* no WebCrypto: the arm stays unknown, no provisional action */ });
    }
    return this._arm;
  }

  _edgeResult(r) {
    const latencyMs = Math.round((r.decided_at - r.captured_at) * 1000) / 1000;
    /** The newest edge result: `{event_id, intent_score, feature_hash, features (array), decision, edge_latency_ms}`. */
    this.lastEdgeResult = { event_id: r.event.event_id, intent_score: r.intent_score, feature_hash: r.feature_hash,
      features: Array.from(r.vector), decision: r.decision, edge_latency_ms: latencyMs };
    const d = r.decision;
    // a visitor of the ruleset's holdout arm gets no personalization, provisional or not
    if (d && this.options.onEdgeDecision && this._edgeArm() === 'personalized') {
      try {
        this.options.onEdgeDecision({ ...d, event_id: r.event.event_id, intent_score: r.intent_score,
          model_version: r.model_version, feature_hash: r.feature_hash, edge_latency_ms: latencyMs, source: 'edge' });
      } catch (_e) { /* a page's handler never breaks capture */ }
    }
    const last = this._edgeLastSentScore;
    if (d || last === null || Math.abs(r.intent_score - last) >= EDGE_INTENT_MIN_SCORE_DELTA) {
      this._edgeLastSentScore = r.intent_score;
      this.track('intent', { intent_score: r.intent_score, model_version: r.model_version,
        rules_version: r.rules_version, feature_hash: r.feature_hash, trigger_event_id: r.event.event_id,
        action: d ? d.action : null, rule_id: d ? d.rule_id : null, edge_latency_ms: latencyMs });
    }
  }

  _notify(info) {
    if (this.options.onSend) {
      try { this.options.onSend(info); } catch (_e) { /* never break capture */ }
    }
  }

  // --- capture ----------------------------------------------------------------------------------

  _on(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this._listeners.push(() => target.removeEventListener(type, fn, opts));
  }

  /** Attach all listeners (called by {@link init}). */
  start() {
    const doc = globalThis.document;
    const win = globalThis;
    if (!doc) return;
    this._loadOutbox();
    this._visibilityState = doc.visibilityState === 'hidden' ? 'hidden' : 'visible';
    if (this._visibilityState === 'visible') this._visibleSinceMs = nowMs();
    if (this.options.edge && this.options.consent.personalization !== false) this._startEdge();
    if (this.options.autoPageView) this.track('page_view', { title: cut(doc.title || '') });

    this._on(doc, 'click', (e) => this._onClick(e), true);
    this._on(doc, 'pointerenter', (e) => this._onPointerEnter(e), true);
    this._on(doc, 'pointerleave', (e) => this._onPointerLeave(e), true);
    this._on(doc, 'focusin', (e) => this._onForm(e, 'focus'), true);
    this._on(doc, 'focusout', (e) => this._onForm(e, 'blur'), true);
    this._on(doc, 'change', (e) => this._onForm(e, 'change'), true);
    this._on(doc, 'submit', (e) => this._onForm(e, 'submit'), true);
    this._on(doc, 'visibilitychange', () => this._onVisibility());
    this._on(win, 'pagehide', () => this._onPageHide());
    // back/forward cache: the same page comes back without a new load
    this._on(win, 'pageshow', (e) => { if (e.persisted) { this._unloading = false; this._markVisible(nowMs()); } });
    if (this.options.mouse) this._on(doc, 'pointermove', (e) => this._onPointerMove(e), { passive: true, capture: true });
    this._startScroll();
    if (this.queue.length) this.flush();
  }

  /** Remove listeners and observers (the queue is kept). */
  stop() {
    for (const off of this._listeners.splice(0)) off();
    if (this._io) this._io.disconnect();
    if (this._ro) this._ro.disconnect();
    for (const s of this._sentinels || []) s.remove();
    if (this._traj.raf) cancelAnimationFrame(this._traj.raf);
    if (this._edgeRefreshTimer) clearInterval(this._edgeRefreshTimer);
    if (globalThis.__intentflowTracker === this) globalThis.__intentflowTracker = null;
  }

  _tracked(target) {
    return target && target.closest ? target.closest(TRACKED_SELECTOR) : null;
  }

  _elementIds(el) {
    return {
      element_id: el.getAttribute('data-if-id') || el.id || null,
      element_role: el.getAttribute('data-if-role') || null,
    };
  }

  _onClick(e) {
    let el = this._tracked(e.target);
    if (!el && e.target && e.target.closest) el = e.target.closest('a,button');
    if (!el) return;
    const t = nowMs();
    this._endTrajectory();
    this._splitHovers(e.target, t);
    this.track('click', { ...this._elementIds(el), x_px: Math.round(e.clientX), y_px: Math.round(e.clientY) });
  }

  // hover: visible time only
  _onPointerEnter(e) {
    const el = e.target;
    if (!el || !el.matches || !el.matches(TRACKED_SELECTOR) || this._hovers.has(el)) return;
    const visible = globalThis.document.visibilityState !== 'hidden';
    this._hovers.set(el, { visibleMs: 0, sinceMs: visible ? nowMs() : null });
  }

  _onPointerLeave(e) {
    const el = e.target;
    const h = this._hovers.get(el);
    if (!h) return;
    this._hovers.delete(el);
    this._emitHover(el, h, nowMs());
  }

  /**
   * A click inside a hovered element closes its hover segment (sent now, before the click) and
   * starts a new one, so the hover that led to a click is known when the click is. Hover events are
   * therefore segments: the total dwell on an element is the sum of its `hover_ms`.
   */
  _splitHovers(target, tMs) {
    const visible = globalThis.document.visibilityState !== 'hidden';
    for (const [el, h] of this._hovers) {
      if (!el.contains(target)) continue;
      this._emitHover(el, h, tMs);
      h.visibleMs = 0;
      h.sinceMs = visible ? tMs : null;
    }
  }

  _emitHover(el, h, tMs) {
    const hoverMs = Math.round(h.visibleMs + (h.sinceMs !== null ? tMs - h.sinceMs : 0));
    this.track('hover', { ...this._elementIds(el), hover_ms: hoverMs }, tMs);
  }

  /** Hover ms so far of each element being hovered now (visible time only). @returns {object} */
  activeHoverMs() {
    const t = nowMs();
    const out = {};
    for (const [el, h] of this._hovers) {
      out[this._elementIds(el).element_id || this._elementIds(el).element_role] =
        Math.round(h.visibleMs + (h.sinceMs !== null ? t - h.sinceMs : 0));
    }
    return out;
  }

  _onVisibility() {
    if (globalThis.document.visibilityState === 'hidden') {
      this._markHidden(nowMs());
      this.flush({ unloading: true });
    } else {
      this._markVisible(nowMs());
    }
  }

  /**
   * The page stopped being visible (visibilitychange or pagehide, whichever comes first: browsers
   * fire both on unload, Safari sometimes only pagehide): pause visible time and hovers, close the
   * trajectory and scroll, and send one `visibility` event.
   */
  _markHidden(t) {
    if (this._visibilityState === 'hidden') return;
    this._visibilityState = 'hidden';
    if (this._visibleSinceMs !== null) { this._visibleMs += t - this._visibleSinceMs; this._visibleSinceMs = null; }
    for (const h of this._hovers.values()) {
      if (h.sinceMs !== null) { h.visibleMs += t - h.sinceMs; h.sinceMs = null; }
    }
    this._endTrajectory();
    this._emitScroll(true);
    this.track('visibility', { state: 'hidden', visible_ms: Math.round(this._visibleMs) }, t);
    this._saveEdge();
  }

  _markVisible(t) {
    if (this._visibilityState === 'visible') return;
    this._visibilityState = 'visible';
    if (this._visibleSinceMs === null) this._visibleSinceMs = t;
    for (const h of this._hovers.values()) if (h.sinceMs === null) h.sinceMs = t;
    this._loadOutbox();
    this.track('visibility', { state: 'visible', visible_ms: Math.round(this._visibleMs) }, t);
  }

  /** Visible time on the page so far, ms (Page Visibility API). @returns {number} */
  visibleMs() {
    return Math.round(this._visibleMs + (this._visibleSinceMs !== null ? nowMs() - this._visibleSinceMs : 0));
  }

  _onPageHide() {
    const t = nowMs();
    this._unloading = true;
    for (const [el, h] of this._hovers) this._emitHover(el, h, t);
    this._hovers.clear();
    this._endTrajectory();
    this._emitScroll(true);
    for (const [formId, f] of this._forms) {
      if (f.touched && !f.submitted) this.track('form', { form_id: formId, field_id: f.lastField, action: 'abandon' }, t);
    }
    this._forms.clear();
    this._markHidden(t);
    this.flush({ unloading: true });
  }

  // forms: ids and actions only, never values
  _onForm(e, action) {
    const target = e.target;
    if (!target) return;
    let form;
    let field = null;
    if (action === 'submit') {
      form = target.tagName === 'FORM' ? target : null;
    } else {
      if (!target.matches || !target.matches('input,select,textarea')) return;
      form = target.form || (target.closest ? target.closest('form') : null);
      field = target.getAttribute('data-if-id') || target.id || target.getAttribute('name') || null;
    }
    const formId = form ? (form.getAttribute('data-if-id') || form.id || form.getAttribute('name') || null) : null;
    const key = formId || '_noform';
    const state = this._forms.get(key) || { touched: false, submitted: false, lastField: null };
    if (action === 'submit') state.submitted = true; else { state.touched = true; state.lastField = field; }
    this._forms.set(key, state);
    this.track('form', { form_id: formId, field_id: field, action });
  }

  // scroll depth: IntersectionObserver sentinels, re-laid out when the document grows
  _docHeight() {
    const doc = globalThis.document;
    return Math.max(doc.documentElement ? doc.documentElement.scrollHeight : 0, doc.body ? doc.body.scrollHeight : 0);
  }

  _startScroll() {
    const doc = globalThis.document;
    if (typeof IntersectionObserver === 'undefined' || !doc.body) {
      this._on(globalThis, 'scroll', () => this._emitScroll(false), { passive: true });
      return;
    }
    this._io = new IntersectionObserver((entries) => {
      if (entries.some((en) => en.isIntersecting)) this._emitScroll(false);
    });
    this._sentinels = [];
    for (let pct = SCROLL_SENTINEL_STEP_PCT; pct <= 100; pct += SCROLL_SENTINEL_STEP_PCT) {
      const s = doc.createElement('div');
      s.setAttribute('data-if-sentinel', String(pct));
      s.setAttribute('aria-hidden', 'true');
      s.style.cssText = 'position:absolute;left:0;width:1px;height:1px;pointer-events:none;visibility:hidden;margin:0;padding:0;';
      doc.body.appendChild(s);
      this._sentinels.push(s);
    }
    this._layoutSentinels();
    for (const s of this._sentinels) this._io.observe(s);
    if (typeof ResizeObserver !== 'undefined') {
      this._ro = new ResizeObserver(() => { this._layoutSentinels(); });
      this._ro.observe(doc.body);
    }
  }

  _layoutSentinels() {
    const heightPx = this._docHeight();
    if (heightPx === this._sentinelHeightPx) return;
    this._sentinelHeightPx = heightPx;
    for (const s of this._sentinels) {
      const pct = Number(s.getAttribute('data-if-sentinel'));
      s.style.top = `${Math.max(0, Math.floor((heightPx * pct) / 100) - 2)}px`;
    }
  }

  /**
   * Emit a `scroll` event when the deepest point reached (viewport bottom, px from the top) moved
   * down by at least half a sentinel step of the current document height (or, with `final`, by any
   * amount). Measured in px, not %, so on a page that grows (infinite scroll) reading further down is
   * reported even though the percentage of the now longer document is lower than before.
   */
  _emitScroll(final) {
    const offsetPx = Math.max(0, Math.round(globalThis.scrollY || globalThis.pageYOffset || 0));
    const viewportPx = Math.round(globalThis.innerHeight || 0);
    this._scrollMaxOffsetPx = Math.max(this._scrollMaxOffsetPx, offsetPx);
    const heightPx = this._docHeight();
    const bottomPx = Math.min(this._scrollMaxOffsetPx + viewportPx, Math.max(heightPx, viewportPx));
    const stepPx = final ? 1 : (heightPx * SCROLL_SENTINEL_STEP_PCT) / 200;
    if (this._lastScrollBottomPx !== undefined && bottomPx - this._lastScrollBottomPx < stepPx
        && heightPx === this._lastScrollHeightPx) return;
    if (this._lastScrollBottomPx !== undefined && bottomPx <= this._lastScrollBottomPx) return;
    this._lastScrollBottomPx = bottomPx;
    this._lastScrollHeightPx = heightPx;
    const d = scrollDepth(this._scrollMaxOffsetPx, viewportPx, heightPx);
    this.track('scroll', { scroll_depth_pct: d.scroll_depth_pct, scroll_depth_pct_raw: d.scroll_depth_pct_raw,
      offset_px: this._scrollMaxOffsetPx, document_height_px: heightPx });
  }

  // mouse trajectories: rAF sampling of the latest pointer position, summaries only
  _onPointerMove(e) {
    if (e.pointerType && e.pointerType !== 'mouse') return;
    this._traj.pointer = { x: e.clientX, y: e.clientY };
    this._traj.lastMoveMs = nowMs();
    if (!this._traj.raf && typeof requestAnimationFrame === 'function') {
      this._traj.raf = requestAnimationFrame(() => this._sampleFrame());
    }
  }

  _sampleFrame() {
    this._traj.raf = 0;
    const t = nowMs();
    const tr = this._traj;
    if (tr.pointer) tr.samples.push({ t_ms: t, x_px: tr.pointer.x, y_px: tr.pointer.y });
    const first = tr.samples.length ? tr.samples[0].t_ms : t;
    if (t - tr.lastMoveMs >= TRAJECTORY_IDLE_END_MS || t - first >= TRAJECTORY_MAX_DURATION_MS
        || tr.samples.length >= TRAJECTORY_MAX_SAMPLES) {
      this._endTrajectory();
      if (t - tr.lastMoveMs >= TRAJECTORY_IDLE_END_MS) return; // idle: stop sampling until the next move
    }
    tr.raf = requestAnimationFrame(() => this._sampleFrame());
  }

  _endTrajectory() {
    const tr = this._traj;
    // drop the trailing samples taken after the last movement (idle tail)
    let samples = tr.samples;
    tr.samples = [];
    while (samples.length > 1 && samples[samples.length - 1].t_ms > tr.lastMoveMs
           && samples[samples.length - 1].x_px === samples[samples.length - 2].x_px
           && samples[samples.length - 1].y_px === samples[samples.length - 2].y_px) {
      samples = samples.slice(0, -1);
    }
    if (samples.length < TRAJECTORY_MIN_SAMPLES) return;
    const summary = summarizeTrajectory(samples);
    if (summary.path_length_px <= 0) return;
    // stamped when the stretch is summarized (now), so event times stay in capture order: a stretch
    // ends up to TRAJECTORY_IDLE_END_MS after its last sample, and scrolls may have been sent meanwhile.
    this.track('mouse_trajectory', summary);
  }
}
