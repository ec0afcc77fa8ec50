/**
 * intentflow edge scoring: the session features, the intent model and the rules, in the browser.
 *
 * The same three steps the job runs per event (udfs/session.py, udfs/scoring.py, udfs/rules.py), on
 * the events this page's SDK captures, for a provisional action before any server round trip:
 *
 *   1. {@link SessionFeatures}: noise filter + features, a line-by-line port of
 *      `udfs.session.SessionState.apply` driven by `edge-spec.v1.json`, which `udfs/edge_spec.py`
 *      generates from `udfs/features.py` (names, order, units, dtype), `udfs/noise.py` (filter
 *      parameters) and `udfs/session.py` (constants); nothing of those is written here by hand.
 *      Arithmetic is in float64 in the same order as Python, the vector is rounded to float32 at the
 *      end as `SessionState.features()` does, so the values are bit-identical (tests/unit/test_edge_parity.py).
 *   2. {@link EdgeScorer}: the model the job uses (`GET /v1/models/intent-lr/current`) in
 *      onnxruntime-web (wasm backend, one thread), input columns selected by name from the manifest.
 *   3. {@link RuleEvaluator}: the ruleset in force (`GET /v1/rules`), same semantics as
 *      `udfs.rules.RuleEngine` (priority then rule id, per-rule cool-down in event time, adaptive
 *      threshold variants by CRC-32 of "<rule id>|<anonymous id, else session id>"), interpreted (no eval, CSP-safe).
 *
 * Trust: the result is advisory. The server recomputes everything from the raw events and its
 * decision replaces the provisional one; see docs/edge.md.
 *
 * Dependency-free ES module; onnxruntime-web is imported at run time from the collector
 * (`/v1/edge/ort/ort.wasm.min.mjs`, served from the installed npm package, never from a CDN).
 *
 * Why one file of over 400 lines: it is loaded by the page as one dependency-free module, and its three
 * parts are line-by-line ports of three Python modules, kept side by side for the parity tests.
 *
 * @module intentflow/edge
 */

/** Layout version of edge-spec.v1.json this module reads (udfs/edge_spec.py SPEC_VERSION). */
export const EDGE_SPEC_VERSION = 1;

/** Default URLs on the collector (collector/edge.py). */
export const EDGE_PATHS = Object.freeze({
  spec: '/sdk/edge-spec.v1.json',
  model: '/v1/models/intent-lr/current',
  rules: '/v1/rules',
  ortModule: '/v1/edge/ort/ort.wasm.min.mjs',
  ortWasmDir: '/v1/edge/ort/',
});

// ---------------------------------------------------------------------------------------------
// 1. Session features (port of udfs/session.py + udfs/noise.py)
// ---------------------------------------------------------------------------------------------

/** Outcome statuses and reasons: the strings of udfs/session.py and udfs/noise.py. */
const APPLIED = Object.freeze({ status: 'applied', reason: 'applied' });
const LATE = Object.freeze({ status: 'late', reason: 'out_of_order' });
const IGNORED_NOT_BEHAVIORAL = Object.freeze({ status: 'ignored', reason: 'not_behavioral' });
const IGNORED_UNKNOWN_TYPE = Object.freeze({ status: 'ignored', reason: 'unknown_type' });
const suppressed = (reason) => ({ status: 'suppressed', reason });

/** `udfs.noise.ema`: alpha * value + (1 - alpha) * previous; the first value (previous null) as is. */
export function ema(previous, value, alpha) {
  if (previous === null) return value;
  return alpha * value + (1.0 - alpha) * previous;
}

/** Python's `x or 0.0` then `float(...)` on a JSON value: null/undefined/0/false -> 0. */
function num(x) {
  return x ? Number(x) : 0.0;
}

/** ms per day and the weekday of epoch day 0 (Thursday = 3, Monday = 0): `udfs.session` constants. */
const MS_PER_DAY = 86400000;
const EPOCH_WEEKDAY = 3;
const PAGE_TYPES = new Set(['administrative', 'informational', 'product_related']);

/** `udfs.session.page_type_of_event`: page.type, else product_related when page.item_id is set, else null. */
export function pageTypeOfEvent(event) {
  const page = event.page || {};
  if (PAGE_TYPES.has(page.type)) return page.type;
  return page.item_id ? 'product_related' : null;
}

/** Python's f"{x}" for the click position key of udfs.noise.click_element_key (null -> "None"). */
function pyStr(x) {
  return x === null || x === undefined ? 'None' : String(x);
}

/**
 * One session's noise filter and features, applied event by event in event-time order
 * (port of `udfs.session.SessionState`; same outcomes, same float32 vector).
 */
export class SessionFeatures {
  /**
   * @param {object} spec parsed edge-spec.v1.json
   * @param {{visitCount?: number}} [options] the visitor's visit number (feature `visit_count`), default 1
   * @throws {Error} the spec's `spec_version` is not {@link EDGE_SPEC_VERSION}
   */
  constructor(spec, options = {}) {
    if (!spec || spec.spec_version !== EDGE_SPEC_VERSION) {
      throw new Error(`edge spec version ${spec && spec.spec_version} not supported (expected ${EDGE_SPEC_VERSION})`);
    }
    this.spec = spec;
    this.noise = spec.noise;
    this.featureNames = spec.features.map((f) => f.name);
    const at = (name) => {
      const i = this.featureNames.indexOf(name);
      if (i < 0) throw new Error(`edge spec lacks feature ${name}`);
      return i;
    };
    this._i = {};
    for (const name of ['session_age_s', 'time_since_last_event_s', 'event_count', 'page_view_count',
      'product_view_count', 'distinct_product_view_count', 'current_item_view_count', 'max_scroll_depth_pct',
      'scroll_depth_pct_ema', 'hover_ms_total', 'hover_ms_product_card', 'hover_ms_spec', 'hover_ms_max_element',
      'hover_ms_ema', 'click_count', 'click_velocity_per_min', 'compare_click_count', 'visible_time_on_page_s',
      'form_interaction_count', 'trajectory_straightness_ema', 'trajectory_speed_px_s_ema', 'add_to_cart_count',
      'purchase_count', 'device_mobile_flag', 'device_tablet_flag', 'device_desktop_flag', 'viewport_w_px',
      'viewport_h_px', 'network_slow_flag', 'network_rtt_ms', 'network_downlink_mbps', 'visit_count',
      'administrative_page_view_count', 'administrative_page_time_s', 'informational_page_view_count',
      'informational_page_time_s', 'product_related_page_view_count', 'product_related_page_time_s',
      'page_bounce_rate_mean_ratio', 'page_exit_rate_mean_ratio', 'weekend_flag', 'returning_visitor_flag']) {
      this._i[name] = at(name);
    }
    if (this.featureNames.length !== Object.keys(this._i).length) {
      throw new Error(`edge spec has ${this.featureNames.length} features, this SDK computes ${Object.keys(this._i).length}`);
    }
    this._behavioral = new Set(spec.session.behavioral_types);
    this._implausibleFlags = new Set(spec.session.implausible_flags || []);
    this._implausibleReason = spec.session.implausible_reason || 'implausible_value';
    this._slowTypes = new Set(spec.session.slow_effective_types);
    this._windowMs = spec.session.click_velocity_window_ms;
    this._maxKeys = spec.session.max_tracked_keys;
    this.sessionId = null;
    this.visitCount = Math.trunc(options.visitCount ?? 1);
    this._v = new Float64Array(this.featureNames.length);
    this._v[this._i.visit_count] = this.visitCount;
    this._v[this._i.returning_visitor_flag] = this.visitCount > 1 ? 1.0 : 0.0;
    this._v[this._i.page_bounce_rate_mean_ratio] = spec.session.default_page_bounce_rate;
    this._v[this._i.page_exit_rate_mean_ratio] = spec.session.default_page_exit_rate;
    this._pageTimeIdx = null; // page-time feature of the current page's type; null: untyped page
    this._pageStartTs = 0;
    this._pageTimeClosed = 0.0;
    this._bounceSum = 0.0;
    this._exitSum = 0.0;
    this._nRated = 0;
    this._firstTs = null;
    this._lastAppliedTs = null;
    this._lastSeenTs = null;
    this._itemViews = new Map();
    this._hoverByElement = new Map();
    this._clickTs = [];
    this._clickHead = 0;
    this._scrollEma = null;
    this._hoverEma = null;
    this._straightEma = null;
    this._speedEma = null;
    this._lastClickTsMs = new Map(); // noise filter: element key -> ts_ms of its last click
    this._lastScrollPct = null; // noise filter: depth of the previous applied scroll on this page
    this.suppressedCount = 0;
    this.lateCount = 0;
  }

  /**
   * The whole state as a JSON-ready object, to carry a session's features to the next page of the
   * site (sessionStorage): the server's session spans pages, so must the browser's. Numbers are
   * float64 and JSON round-trips them exactly.
   * @returns {object}
   */
  snapshot() {
    return {
      spec_version: EDGE_SPEC_VERSION, n_features: this._v.length, session_id: this.sessionId,
      visit_count: this.visitCount, v: Array.from(this._v), first_ts: this._firstTs,
      last_applied_ts: this._lastAppliedTs, last_seen_ts: this._lastSeenTs, item_views: Array.from(this._itemViews),
      hover_by_element: Array.from(this._hoverByElement), click_ts: this._clickTs.slice(this._clickHead),
      scroll_ema: this._scrollEma, hover_ema: this._hoverEma, straight_ema: this._straightEma,
      speed_ema: this._speedEma, last_click_ts_ms: Array.from(this._lastClickTsMs),
      last_scroll_pct: this._lastScrollPct, suppressed_count: this.suppressedCount, late_count: this.lateCount,
      page_time_idx: this._pageTimeIdx, page_start_ts: this._pageStartTs, page_time_closed: this._pageTimeClosed,
      bounce_sum: this._bounceSum, exit_sum: this._exitSum, n_rated: this._nRated,
    };
  }

  /**
   * A SessionFeatures continuing from {@link SessionFeatures#snapshot}.
   * @param {object} spec edge spec
   * @param {object} snap a snapshot
   * @returns {SessionFeatures}
   * @throws {Error} the snapshot was taken with another spec version or feature count
   */
  static restore(spec, snap) {
    const f = new SessionFeatures(spec, { visitCount: snap.visit_count });
    if (snap.spec_version !== EDGE_SPEC_VERSION || snap.n_features !== f._v.length) {
      throw new Error('edge snapshot of another spec: not restored');
    }
    f.sessionId = snap.session_id;
    f._v = Float64Array.from(snap.v);
    f._firstTs = snap.first_ts;
    f._lastAppliedTs = snap.last_applied_ts;
    f._lastSeenTs = snap.last_seen_ts;
    f._itemViews = new Map(snap.item_views);
    f._hoverByElement = new Map(snap.hover_by_element);
    f._clickTs = snap.click_ts.slice();
    f._scrollEma = snap.scroll_ema;
    f._hoverEma = snap.hover_ema;
    f._straightEma = snap.straight_ema;
    f._speedEma = snap.speed_ema;
    f._lastClickTsMs = new Map(snap.last_click_ts_ms);
    f._lastScrollPct = snap.last_scroll_pct;
    f.suppressedCount = snap.suppressed_count;
    f.lateCount = snap.late_count;
    f._pageTimeIdx = snap.page_time_idx ?? null;
    f._pageStartTs = snap.page_start_ts ?? 0;
    f._pageTimeClosed = snap.page_time_closed ?? 0.0;
    f._bounceSum = snap.bounce_sum ?? 0.0;
    f._exitSum = snap.exit_sum ?? 0.0;
    f._nRated = snap.n_rated ?? 0;
    return f;
  }

  /** The feature vector as of the last applied event: Float32Array of length N_FEATURES, spec order. */
  vector() {
    return Float32Array.from(this._v);
  }

  /** `{feature name: value}` (float32 values) as of the last applied event. */
  featureDict() {
    const v = this.vector();
    const out = {};
    this.featureNames.forEach((name, i) => { out[name] = v[i]; });
    return out;
  }

  /**
   * Apply one event of this session (a contract event: `type`, `ts_ms`, `session_id`, `props`,
   * `page`, `context`), in event-time order.
   * @param {object} event
   * @returns {{status:string, reason:string}} `applied`, `suppressed` (noise reason), `late`, `ignored`
   * @throws {Error} the event belongs to another session
   */
  apply(event) {
    const ts = event.ts_ms;
    const type = event.type;
    const sessionId = event.session_id ?? null;
    if (this.sessionId === null) this.sessionId = sessionId;
    else if (sessionId !== this.sessionId) throw new Error(`event of session ${sessionId} applied to session ${this.sessionId}`);
    if (this._lastSeenTs !== null && ts < this._lastSeenTs) {
      this.lateCount += 1;
      return LATE;
    }
    this._lastSeenTs = ts;
    if (!this._behavioral.has(type)) return type === 'exposure' ? IGNORED_NOT_BEHAVIORAL : IGNORED_UNKNOWN_TYPE;
    const props = event.props || {};
    const context = event.context ?? null;
    if (Array.isArray(event.flags) && event.flags.some((f) => this._implausibleFlags.has(f))) {
      this.suppressedCount += 1; // udfs.plausibility: the normalizer's flag keeps it out of the features
      return suppressed(this._implausibleReason);
    }
    const reason = this._noiseCheck(type, ts, props, context);
    if (reason !== null) {
      this.suppressedCount += 1;
      return suppressed(reason);
    }
    const v = this._v;
    const I = this._i;
    if (this._firstTs === null) {
      this._firstTs = ts;
      v[I.time_since_last_event_s] = 0.0;
    } else {
      v[I.time_since_last_event_s] = (ts - this._lastAppliedTs) / 1000.0;
    }
    this._lastAppliedTs = ts;
    v[I.session_age_s] = (ts - this._firstTs) / 1000.0;
    v[I.event_count] += 1.0;
    v[I.weekend_flag] = (Math.floor(ts / MS_PER_DAY) + EPOCH_WEEKDAY) % 7 >= 5 ? 1.0 : 0.0;
    if (this._pageTimeIdx !== null) v[this._pageTimeIdx] = this._pageTimeClosed + (ts - this._pageStartTs) / 1000.0;
    const horizon = ts - this._windowMs;
    while (this._clickHead < this._clickTs.length && this._clickTs[this._clickHead] <= horizon) this._clickHead += 1;
    if (this._clickHead > 1024) { this._clickTs = this._clickTs.slice(this._clickHead); this._clickHead = 0; }
    if (context !== null) this._enrich(context);

    const alpha = this.noise.ema_alpha;
    if (type === 'page_view') {
      this._pageView(event);
    } else if (type === 'click') {
      v[I.click_count] += 1.0;
      this._clickTs.push(ts);
      if (props.element_role === 'compare_button') v[I.compare_click_count] += 1.0;
    } else if (type === 'scroll') {
      let depth = num(props.scroll_depth_pct);
      depth = depth < 0.0 ? 0.0 : (depth > 100.0 ? 100.0 : depth);
      if (depth > v[I.max_scroll_depth_pct]) v[I.max_scroll_depth_pct] = depth;
      this._scrollEma = ema(this._scrollEma, depth, alpha);
      v[I.scroll_depth_pct_ema] = this._scrollEma;
    } else if (type === 'hover') {
      const hoverMs = num(props.hover_ms);
      v[I.hover_ms_total] += hoverMs;
      const role = props.element_role;
      if (role === 'product_card') v[I.hover_ms_product_card] += hoverMs;
      else if (role === 'spec') v[I.hover_ms_spec] += hoverMs;
      const element = props.element_id || role || '';
      const table = this._hoverByElement;
      let dwell = table.get(element);
      if (dwell !== undefined) {
        dwell += hoverMs;
        table.set(element, dwell);
      } else {
        dwell = hoverMs;
        if (table.size < this._maxKeys) table.set(element, dwell);
      }
      if (dwell > v[I.hover_ms_max_element]) v[I.hover_ms_max_element] = dwell;
      this._hoverEma = ema(this._hoverEma, hoverMs, alpha);
      v[I.hover_ms_ema] = this._hoverEma;
    } else if (type === 'visibility') {
      const visibleS = num(props.visible_ms) / 1000.0;
      if (visibleS > v[I.visible_time_on_page_s]) v[I.visible_time_on_page_s] = visibleS;
    } else if (type === 'form') {
      v[I.form_interaction_count] += 1.0;
    } else if (type === 'mouse_trajectory') {
      this._straightEma = ema(this._straightEma, num(props.straightness), alpha);
      this._speedEma = ema(this._speedEma, num(props.mean_speed_px_s), alpha);
      v[I.trajectory_straightness_ema] = this._straightEma;
      v[I.trajectory_speed_px_s_ema] = this._speedEma;
    } else if (type === 'add_to_cart') {
      v[I.add_to_cart_count] += 1.0;
    } else { // purchase
      v[I.purchase_count] += 1.0;
    }
    v[I.click_velocity_per_min] = this._clickTs.length - this._clickHead;
    return APPLIED;
  }

  /** `udfs.noise.NoiseFilter.check`: null to apply, else the suppression reason. */
  _noiseCheck(type, ts, props, context) {
    const cfg = this.noise;
    if (cfg.drop_bot_events && context && context.is_bot) return 'bot';
    if (type === 'click') {
      const key = props.element_id ? props.element_id : `@${pyStr(props.x_px)},${pyStr(props.y_px)}`;
      const table = this._lastClickTsMs;
      const previous = table.get(key);
      table.set(key, ts);
      if (table.size > cfg.max_tracked_click_elements) {
        const horizon = ts - cfg.click_debounce_ms;
        for (const [k, t] of Array.from(table)) if (t <= horizon) table.delete(k);
      }
      if (previous !== undefined && ts - previous < cfg.click_debounce_ms) return 'debounced_click';
      return null;
    }
    if (type === 'hover') return num(props.hover_ms) < cfg.hover_min_ms ? 'hover_too_short' : null;
    if (type === 'mouse_trajectory') {
      return num(props.sample_count) < cfg.trajectory_min_samples ? 'trajectory_too_few_samples' : null;
    }
    if (type === 'scroll') {
      const depth = num(props.scroll_depth_pct);
      if (this._lastScrollPct !== null && Math.abs(depth - this._lastScrollPct) < cfg.scroll_min_delta_pct) {
        return 'scroll_delta_too_small';
      }
      this._lastScrollPct = depth;
      return null;
    }
    return null;
  }

  _pageView(event) {
    const v = this._v;
    const I = this._i;
    v[I.page_view_count] += 1.0;
    const pageType = pageTypeOfEvent(event);
    if (pageType === null) {
      this._pageTimeIdx = null;
    } else {
      v[I[`${pageType}_page_view_count`]] += 1.0;
      const iTime = I[`${pageType}_page_time_s`];
      this._pageTimeIdx = iTime;
      this._pageTimeClosed = v[iTime];
      this._pageStartTs = event.ts_ms;
    }
    const bounce = event._page_bounce_rate;
    const exitRate = event._page_exit_rate;
    if (bounce !== undefined && bounce !== null && exitRate !== undefined && exitRate !== null) {
      this._bounceSum += num(bounce);
      this._exitSum += num(exitRate);
      this._nRated += 1;
      v[I.page_bounce_rate_mean_ratio] = this._bounceSum / this._nRated;
      v[I.page_exit_rate_mean_ratio] = this._exitSum / this._nRated;
    }
    v[I.max_scroll_depth_pct] = 0.0;
    v[I.scroll_depth_pct_ema] = 0.0;
    v[I.visible_time_on_page_s] = 0.0;
    this._scrollEma = null;
    this._lastScrollPct = null; // NoiseFilter.new_page
    const page = event.page || {};
    const item = page.item_id;
    if (item) {
      v[I.product_view_count] += 1.0;
      let n = this._itemViews.get(item);
      if (n === undefined) {
        v[I.distinct_product_view_count] += 1.0;
        n = 1;
        if (this._itemViews.size >= this._maxKeys) {
          v[I.current_item_view_count] = 1.0;
          return;
        }
      } else {
        n += 1;
      }
      this._itemViews.set(item, n);
      v[I.current_item_view_count] = n;
    } else {
      v[I.current_item_view_count] = 0.0;
    }
  }

  /** `udfs.session.network_class`: 'slow' | 'fast' | 'unknown'. */
  networkClass(network) {
    if (!network || Object.keys(network).length === 0) return 'unknown';
    if (network.save_data) return 'slow';
    const effective = network.effective_type;
    if (this._slowTypes.has(effective)) return 'slow';
    if (effective === '4g') return 'fast';
    return 'unknown';
  }

  _enrich(context) {
    const network = context.network || {};
    const device = context.device_class || 'unknown';
    const v = this._v;
    const I = this._i;
    v[I.device_mobile_flag] = device === 'mobile' ? 1.0 : 0.0;
    v[I.device_tablet_flag] = device === 'tablet' ? 1.0 : 0.0;
    v[I.device_desktop_flag] = device === 'desktop' ? 1.0 : 0.0;
    v[I.viewport_w_px] = num(context.viewport_w_px);
    v[I.viewport_h_px] = num(context.viewport_h_px);
    v[I.network_slow_flag] = this.networkClass(network) === 'slow' ? 1.0 : 0.0;
    v[I.network_rtt_ms] = num(network.rtt_ms);
    v[I.network_downlink_mbps] = num(network.downlink_mbps);
  }
}

/**
 * Event-time order of a session's events (`udfs.session.event_order_key`): ts_ms, then events with a
 * seq before those without, then seq, then event_id.
 */
export function eventOrderCompare(a, b) {
  if (a.ts_ms !== b.ts_ms) return a.ts_ms - b.ts_ms;
  const sa = a.seq ?? null;
  const sb = b.seq ?? null;
  const ha = sa !== null ? 0 : 1;
  const hb = sb !== null ? 0 : 1;
  if (ha !== hb) return ha - hb;
  if ((sa || 0) !== (sb || 0)) return (sa || 0) - (sb || 0);
  const ea = a.event_id || '';
  const eb = b.event_id || '';
  return ea < eb ? -1 : (ea > eb ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------------------------

let crcTable = null;

/**
 * CRC-32 (IEEE 802.3 polynomial 0xEDB88320, reflected; the one of zlib.crc32 / PNG) of bytes.
 * @param {Uint8Array} bytes
 * @returns {number} unsigned 32-bit
 */
export function crc32(bytes) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function utf8(text) {
  return new TextEncoder().encode(text);
}

/**
 * FNV-1a 32-bit hash of a float32 feature vector's little-endian bytes, as `"fnv1a32:<8 hex>"`
 * (offset basis 2166136261, prime 16777619: Fowler/Noll/Vo, IETF draft-eastlake-fnv). Identifies the
 * vector the browser scored in its `intent` event so the server can tell "same features" from
 * "different features" cheaply; not a security measure. Python: `udfs.edge.feature_hash`.
 * @param {Float32Array|number[]} vector
 * @returns {string}
 */
export function featureHash(vector) {
  const buf = new DataView(new ArrayBuffer(vector.length * 4));
  for (let i = 0; i < vector.length; i++) buf.setFloat32(i * 4, vector[i], true);
  let h = 0x811c9dc5;
  for (let i = 0; i < buf.byteLength; i++) {
    h ^= buf.getUint8(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `fnv1a32:${h.toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// 3. Rules (port of udfs/rules.py evaluation)
// ---------------------------------------------------------------------------------------------

/** Threshold variants of an adaptive rule, in `udfs.rules.VARIANTS` index order. */
export const VARIANTS = Object.freeze(['control', 'lower', 'higher']);

/**
 * Index into {@link VARIANTS} a session sees for an adaptive rule (`udfs.rules.variant_for`):
 * bucket = crc32("<rule id>|<id>") % 10000 / 100, < explorePct/2 -> 1, < explorePct -> 2, else 0; the engine
 * passes the event's anonymous id (the visitor), else its session id.
 * @param {string} ruleId
 * @param {string|null} sessionId null -> 0 (control)
 * @param {number} explorePct 0-100
 * @returns {number}
 */
export function variantFor(ruleId, sessionId, explorePct) {
  if (!explorePct || sessionId === null || sessionId === undefined) return 0;
  const bucketPct = (crc32(utf8(`${ruleId}|${sessionId}`)) % 10000) / 100.0;
  if (bucketPct < explorePct / 2.0) return 1;
  if (bucketPct < explorePct) return 2;
  return 0;
}

const OPS = {
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

/** ['e'|'g'|'p', key] for an event path of the schema: e = event, g = page, p = props. */
function eventAccess(path) {
  if (path.startsWith('page.')) return ['g', path.slice(5)];
  if (path.startsWith('props.')) return ['p', path.slice(6)];
  return ['e', path];
}

function walk(node, visit) {
  visit(node);
  for (const key of ['all', 'any']) if (node[key]) for (const child of node[key]) walk(child, visit);
  if (node.not) walk(node.not, visit);
}

function adaptiveComparison(rule) {
  let found = null;
  walk(rule.when, (node) => {
    if (found) return;
    const cmp = 'intent_score' in node ? node.intent_score : node;
    if (cmp && typeof cmp === 'object' && 'adaptive' in cmp) found = cmp;
  });
  return found;
}

/**
 * A ruleset (schemas/rules.v1.json, as `GET /v1/rules` serves it) prepared for per-event evaluation,
 * with the semantics of `udfs.rules.RuleEngine.evaluate_vector_with_reason`.
 */
export class RuleEvaluator {
  /**
   * @param {object} ruleset the ruleset object (validated by the server)
   * @param {string[]} featureNames vector order (edge spec `features` names)
   * @throws {Error} a condition names an unknown feature or is not a known condition kind
   */
  constructor(ruleset, featureNames) {
    this.rulesVersion = ruleset.rules_version;
    /** The ruleset's experiment (holdout share; docs/experiments.md), or null. */
    this.experiment = ruleset.experiment || null;
    const index = new Map(featureNames.map((n, i) => [n, i]));
    const enabled = ruleset.rules.filter((r) => r.enabled !== false);
    enabled.sort((a, b) => (b.priority - a.priority) || (a.id < b.id ? -1 : (a.id > b.id ? 1 : 0)));
    this.rules = enabled.map((rule) => {
      const adaptive = adaptiveComparison(rule);
      const params = rule.action.params || {};
      return {
        id: rule.id,
        version: Math.trunc(rule.version),
        priority: Math.trunc(rule.priority),
        cooldownMs: Math.trunc(rule.cooldown_ms),
        action: rule.action.name,
        literalParams: Object.entries(params).filter(([, v]) => !(v && typeof v === 'object')),
        eventParams: Object.entries(params).filter(([, v]) => v && typeof v === 'object')
          .map(([k, v]) => [k, ...eventAccess(v.$event)]),
        explorePct: adaptive ? Number(adaptive.adaptive.explore_pct || 0) : 0,
        test: this._compile(rule.when, rule.id, index),
      };
    });
  }

  _threshold(cmp, ruleId) {
    const adaptive = cmp.adaptive;
    const value = Number(cmp.value);
    if (!adaptive || !adaptive.explore_pct) return () => value;
    const values = [value, Math.max(Number(adaptive.min), value - Number(adaptive.step)),
      Math.min(Number(adaptive.max), value + Number(adaptive.step))];
    const explore = Number(adaptive.explore_pct);
    return (e) => values[variantFor(ruleId, e.anonymous_id || e.session_id || null, explore)];
  }

  _compile(node, ruleId, index) {
    if (node.all) {
      const parts = node.all.map((c) => this._compile(c, ruleId, index));
      return (f, s, e, p, g) => parts.every((t) => t(f, s, e, p, g));
    }
    if (node.any) {
      const parts = node.any.map((c) => this._compile(c, ruleId, index));
      return (f, s, e, p, g) => parts.some((t) => t(f, s, e, p, g));
    }
    if (node.not) {
      const inner = this._compile(node.not, ruleId, index);
      return (f, s, e, p, g) => !inner(f, s, e, p, g);
    }
    if ('feature' in node) {
      const i = index.get(node.feature);
      if (i === undefined) throw new Error(`rule ${ruleId}: unknown feature ${node.feature}`);
      const op = OPS[node.op];
      const threshold = this._threshold(node, ruleId);
      return (f, s, e) => op(f[i], threshold(e));
    }
    if ('intent_score' in node) {
      const op = OPS[node.intent_score.op];
      const threshold = this._threshold(node.intent_score, ruleId);
      return (f, s, e) => op(s, threshold(e));
    }
    if ('event_type' in node) {
      const want = String(node.event_type);
      return (f, s, e) => e.type === want;
    }
    if ('event_element_role' in node) {
      const want = String(node.event_element_role);
      return (f, s, e, p) => p.element_role === want;
    }
    if ('event_has' in node) {
      const [which, key] = eventAccess(node.event_has);
      return (f, s, e, p, g) => ((which === 'e' ? e : which === 'g' ? g : p)[key] ?? null) !== null;
    }
    throw new Error(`rule ${ruleId}: unknown condition ${JSON.stringify(node)}`);
  }

  /**
   * The action for one event, as `RuleEngine.evaluate_vector_with_reason`.
   * @param {Float32Array|number[]} vector features in spec order (float32 values)
   * @param {number} intentScore 0-1
   * @param {object} event the triggering event (`ts_ms` required)
   * @param {Object<string, number>} lastFired rule id -> event time ms it last fired (caller's state)
   * @returns {{decision: object|null, reason: string}} reason `fired`, `no_match` or `cooldown:<rule id>`;
   *   decision = {action, params, rule_id, rule_version, rules_version, priority, event_ts_ms}
   */
  evaluate(vector, intentScore, event, lastFired) {
    const page = event.page || {};
    const props = event.props || {};
    let rule = null;
    for (const r of this.rules) {
      if (r.test(vector, intentScore, event, props, page)) { rule = r; break; }
    }
    if (rule === null) return { decision: null, reason: 'no_match' };
    const tsMs = Math.trunc(event.ts_ms);
    const lastMs = lastFired[rule.id];
    if (lastMs !== undefined && lastMs !== null && tsMs - lastMs < rule.cooldownMs) {
      return { decision: null, reason: `cooldown:${rule.id}` };
    }
    const params = Object.fromEntries(rule.literalParams);
    for (const [key, which, field] of rule.eventParams) {
      params[key] = (which === 'e' ? event : which === 'g' ? page : props)[field] ?? null;
    }
    if (rule.explorePct) {
      params.experiment_id = `${rule.id}@${rule.version}`;
      params.variant = VARIANTS[variantFor(rule.id, event.anonymous_id || event.session_id || null, rule.explorePct)];
    }
    return {
      decision: { action: rule.action, params, rule_id: rule.id, rule_version: rule.version,
        rules_version: this.rulesVersion, priority: rule.priority, event_ts_ms: tsMs },
      reason: 'fired',
    };
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Scoring with onnxruntime-web
// ---------------------------------------------------------------------------------------------

function base64Bytes(text) {
  if (typeof atob === 'function') return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return Uint8Array.from(Buffer.from(text, 'base64')); // node
}

async function sha256Hex(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle) return null; // plain-http page outside localhost: no WebCrypto
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The intent model in onnxruntime-web; scores one full feature vector at a time. */
export class EdgeScorer {
  /**
   * @param {object} session an `ort.InferenceSession`
   * @param {object} ort the onnxruntime-web module (for `ort.Tensor`)
   * @param {object} model `GET /v1/models/<name>/current` body without the bytes: `model_version`,
   *   `features` (input names in column order), `input_name`, `output_name`
   * @param {string[]} featureNames full vector order (edge spec)
   * @throws {Error} a model feature is not in the vector
   */
  constructor(session, ort, model, featureNames) {
    this.session = session;
    this.ort = ort;
    this.modelVersion = model.model_version;
    this.inputName = model.input_name;
    this.outputName = model.output_name;
    this.columns = Int32Array.from(model.features.map((name) => {
      const i = featureNames.indexOf(name);
      if (i < 0) throw new Error(`model ${model.model_version} uses feature ${name}, unknown to the edge spec`);
      return i;
    }));
    this._chain = Promise.resolve();
  }

  /**
   * Load the model served by the collector (base64 bytes + manifest), checking its sha256 where
   * WebCrypto exists.
   * @param {object} ort onnxruntime-web module
   * @param {object} body the JSON of `GET /v1/models/<name>/current`
   * @param {string[]} featureNames
   * @returns {Promise<EdgeScorer>}
   * @throws {Error} sha256 mismatch, or onnxruntime-web cannot load the model
   */
  static async load(ort, body, featureNames) {
    const bytes = base64Bytes(body.model_base64);
    const actual = await sha256Hex(bytes);
    if (actual !== null && actual !== body.sha256) {
      throw new Error(`model ${body.model_version}: sha256 ${actual} does not match the manifest's ${body.sha256}`);
    }
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    return new EdgeScorer(session, ort, body, featureNames);
  }

  /**
   * Intent score of one full feature vector (the model's columns are selected by name).
   * Calls are serialized (one onnxruntime run at a time).
   * @param {Float32Array} vector length N_FEATURES
   * @returns {Promise<number>} probability 0-1, the float32 output as a number
   */
  score(vector) {
    const run = async () => {
      const x = new Float32Array(this.columns.length);
      for (let j = 0; j < this.columns.length; j++) x[j] = vector[this.columns[j]];
      const feeds = { [this.inputName]: new this.ort.Tensor('float32', x, [1, x.length]) };
      const out = (await this.session.run(feeds))[this.outputName];
      const data = out.data;
      return out.dims.length === 2 && out.dims[1] === 2 ? data[1] : data[0];
    };
    const next = this._chain.then(run, run);
    this._chain = next.catch(() => undefined);
    return next;
  }
}

// ---------------------------------------------------------------------------------------------
// The engine: features -> score -> rules, per captured event, in order
// ---------------------------------------------------------------------------------------------

/**
 * Runs the three steps for each event the tracker captures and reports provisional decisions.
 * Features are applied synchronously in capture order; scoring and rules follow in the same order.
 */
export class EdgeEngine {
  /**
   * @param {{spec:object, scorer:EdgeScorer, rules:RuleEvaluator, visitCount?:number, now?:()=>number}} parts
   */
  constructor({ spec, scorer, rules, visitCount = 1, now = () => performance.now() }) {
    this.spec = spec;
    this.scorer = scorer;
    this.rules = rules;
    this.features = new SessionFeatures(spec, { visitCount });
    this.lastFired = {};
    this.now = now;
    this._chain = Promise.resolve();
    /** Counters: events seen, applied, scored, decisions. */
    this.stats = { events: 0, applied: 0, scored: 0, decisions: 0, errors: 0 };
  }

  get modelVersion() { return this.scorer.modelVersion; }

  get rulesVersion() { return this.rules.rulesVersion; }

  /** `{features: SessionFeatures snapshot, last_fired}`: what the next page of the session continues from. */
  snapshot() {
    return { features: this.features.snapshot(), last_fired: { ...this.lastFired } };
  }

  /**
   * Continue a session from {@link EdgeEngine#snapshot} (taken on an earlier page).
   * @param {object} snap
   * @returns {boolean} false when it does not fit (other spec); the engine then starts fresh
   */
  restore(snap) {
    try {
      this.features = SessionFeatures.restore(this.spec, snap.features);
      this.lastFired = { ...snap.last_fired };
      return true;
    } catch (_e) {
      return false;
    }
  }

  /**
   * Switch to a newer ruleset and model if the collector has them (conditional GETs with the ETags
   * of the current ones: unchanged costs a 304 each). Features and cool-downs are kept. Only for an
   * engine built by {@link loadEdge} (else nothing to ask).
   * @returns {Promise<{rules: boolean, model: boolean}>} what changed
   * @throws {Error} a request fails (not 200/304) or the new model does not load (the old one stays)
   */
  async refresh() {
    const src = this.source;
    if (!src) return { rules: false, model: false };
    const get = async (path, etag) => {
      const res = await src.fetch(src.base + path, { credentials: 'omit', headers: etag ? { 'If-None-Match': etag } : {} });
      if (res.status === 304) return null;
      if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
      return { body: JSON.parse(await res.text()), etag: res.headers.get('ETag') };
    };
    const [rules, model] = await Promise.all([get(EDGE_PATHS.rules, src.rulesEtag), get(src.modelPath, src.modelEtag)]);
    if (rules) {
      this.rules = new RuleEvaluator(rules.body, src.featureNames);
      src.rulesEtag = rules.etag;
    }
    if (model) {
      this.scorer = await EdgeScorer.load(src.ort, model.body, src.featureNames);
      src.modelEtag = model.etag;
    }
    return { rules: !!rules, model: !!model };
  }

  /** Replace the ruleset (a newer one from `GET /v1/rules`); cool-downs are kept by rule id. */
  setRules(rules) { this.rules = rules; }

  /**
   * Process one captured event. A new session id (the SDK rolled the session) starts fresh features.
   * @param {object} event contract event
   * @param {number} [capturedAt=now()] performance.now() when the signal was captured (for latency)
   * @returns {Promise<object|null>} null when the event changed no feature (suppressed, ignored, late);
   *   else `{event, outcome, vector (Float32Array), feature_hash, intent_score, decision, reason,
   *   model_version, rules_version, captured_at, decided_at}` (times: performance.now() ms)
   */
  onEvent(event, capturedAt = this.now()) {
    this.stats.events += 1;
    if (this.features.sessionId !== null && event.session_id !== this.features.sessionId) {
      this.features = new SessionFeatures(this.spec, { visitCount: this.features.visitCount });
      this.lastFired = {};
    }
    const outcome = this.features.apply(event);
    if (outcome.status !== 'applied') return Promise.resolve(null);
    this.stats.applied += 1;
    const vector = this.features.vector();
    const step = async () => {
      const score = await this.scorer.score(vector);
      this.stats.scored += 1;
      const { decision, reason } = this.rules.evaluate(vector, score, event, this.lastFired);
      if (decision) {
        this.lastFired[decision.rule_id] = decision.event_ts_ms;
        this.stats.decisions += 1;
      }
      return { event, outcome, vector, feature_hash: featureHash(vector), intent_score: score, decision, reason,
        model_version: this.scorer.modelVersion, rules_version: this.rules.rulesVersion, captured_at: capturedAt,
        decided_at: this.now() };
    };
    const next = this._chain.then(step, step);
    this._chain = next.catch(() => { this.stats.errors += 1; });
    return next;
  }
}

/**
 * Fetch the spec, the current model and the ruleset in force from the collector, load onnxruntime-web
 * from the collector, and build an {@link EdgeEngine}.
 *
 * @param {object} [options]
 * @param {string} [options.baseUrl=''] collector origin ('' = this page's)
 * @param {string} [options.modelName='intent-lr']
 * @param {object} [options.ort] an onnxruntime-web module already loaded (else imported from
 *   `baseUrl + EDGE_PATHS.ortModule`)
 * @param {number} [options.visitCount=1]
 * @param {typeof fetch} [options.fetch]
 * @returns {Promise<{engine: EdgeEngine, timings_ms: object, bytes: object}>} `timings_ms`: load phases
 *   (fetch, runtime import, session create, total); `bytes`: model JSON size
 * @throws {Error} a request fails (status in the message) or the model cannot be loaded
 */
export async function loadEdge(options = {}) {
  const base = options.baseUrl || '';
  const doFetch = options.fetch || globalThis.fetch.bind(globalThis);
  const t0 = performance.now();
  const getJson = async (path) => {
    const res = await doFetch(base + path, { credentials: 'omit' });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    const text = await res.text();
    return { body: JSON.parse(text), bytes: text.length, etag: res.headers.get('ETag') };
  };
  const modelPath = options.modelName ? `/v1/models/${options.modelName}/current` : EDGE_PATHS.model;
  let ort = options.ort;
  const ortPromise = ort ? Promise.resolve(ort) : import(/* webpackIgnore: true */ base + EDGE_PATHS.ortModule);
  const [spec, model, ruleset, ortModule] = await Promise.all([
    getJson(EDGE_PATHS.spec), getJson(modelPath), getJson(EDGE_PATHS.rules), ortPromise]);
  const tFetched = performance.now();
  ort = ortModule.default && ortModule.default.InferenceSession ? ortModule.default : ortModule;
  if (!options.ort) {
    ort.env.wasm.wasmPaths = new URL(EDGE_PATHS.ortWasmDir, base || globalThis.location.href).href;
    ort.env.wasm.numThreads = 1; // no cross-origin isolation needed; one call is microseconds of work
    ort.env.wasm.proxy = false;
  }
  const featureNames = spec.body.features.map((f) => f.name);
  const scorer = await EdgeScorer.load(ort, model.body, featureNames);
  const tLoaded = performance.now();
  const engine = new EdgeEngine({ spec: spec.body, scorer, rules: new RuleEvaluator(ruleset.body, featureNames),
    visitCount: options.visitCount || 1 });
  engine.source = { base, fetch: doFetch, ort, modelPath, featureNames, modelEtag: model.etag, rulesEtag: ruleset.etag };
  return { engine, timings_ms: { fetch: tFetched - t0, session_create: tLoaded - tFetched, total: tLoaded - t0 },
    bytes: { model_json: model.bytes, spec_json: spec.bytes, rules_json: ruleset.bytes } };
}
