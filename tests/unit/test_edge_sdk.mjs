// The SDK's edge path without a browser (node's test runner): node --test tests/unit/test_edge_sdk.mjs
// A fake scorer stands in for onnxruntime-web here (the real model is checked in test_edge_parity.py
// and in Chromium); features and rules are the real ones, from the generated spec and the default ruleset.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { EdgeEngine, RuleEvaluator, SessionFeatures, crc32, featureHash, variantFor } from '../../web/sdk/edge.js';
import { Tracker } from '../../web/sdk/intentflow.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SPEC = JSON.parse(readFileSync(join(ROOT, 'web', 'sdk', 'edge-spec.v1.json'), 'utf8'));
const RULESET = JSON.parse(readFileSync(join(ROOT, 'rules', 'default.v1.json'), 'utf8'));
const NAMES = SPEC.features.map((f) => f.name);

/** A scorer returning a fixed score (records the vectors it was given). */
function fakeScorer(score = 0.25) {
  return { modelVersion: 'intent-lr/1', calls: [], async score(v) { this.calls.push(Array.from(v)); return score; } };
}

function engine(score) {
  return new EdgeEngine({ spec: SPEC, scorer: fakeScorer(score), rules: new RuleEvaluator(RULESET, NAMES), now: () => 0 });
}

const T0 = 1_764_000_000_000;
const ev = (i, type, props, extra = {}) => ({ event_id: `e${i}`, session_id: 's1', type, ts_ms: T0 + i * 1000,
  seq: i, page: { item_id: 'laptop-1' }, context: { device_class: 'desktop', is_bot: false }, props, ...extra });
const ARTICLE = [
  ev(0, 'page_view', {}),
  ev(1, 'scroll', { scroll_depth_pct: 75 }),
  ev(2, 'hover', { element_id: 'card', element_role: 'product_card', hover_ms: 2400 }),
  ev(3, 'click', { element_id: 'compare', element_role: 'compare_button', x_px: 1, y_px: 1 }),
];

test('hashes: CRC-32 check value and the FNV-1a values udfs.edge.feature_hash gives', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(featureHash(new Float32Array(32)), 'fnv1a32:a7b537c5');
  assert.equal(featureHash(Float32Array.from({ length: 32 }, (_, i) => i / 7)), 'fnv1a32:6ae45818');
  assert.equal(variantFor('r', null, 50), 0);
  assert.equal(variantFor('r', 's', 0), 0);
});

test('engine: the article visitor gets the deep-engagement action once, on the hover', async () => {
  const e = engine(0.1); // below rerank_compared_item's threshold (the median score of intent-lr/2, 0.14)
  const results = [];
  for (const x of ARTICLE) results.push(await e.onEvent(x));
  const fired = results.filter((r) => r && r.decision).map((r) => [r.event.event_id, r.decision.rule_id]);
  assert.deepEqual(fired, [['e2', 'deep_engagement_product']]);
  assert.equal(e.lastFired.deep_engagement_product, T0 + 2000);
  assert.equal(e.stats.decisions, 1);
});

test('engine: a suppressed or non-behavioral event changes nothing and is not scored', async () => {
  const e = engine();
  await e.onEvent(ARTICLE[0]);
  const n = e.scorer.calls.length;
  assert.equal(await e.onEvent(ev(1, 'hover', { element_id: 'x', hover_ms: 40 })), null);
  assert.equal(await e.onEvent(ev(2, 'exposure', { experiment_id: 'x', variant: 'a' })), null);
  assert.equal(e.scorer.calls.length, n);
  assert.equal(e.features.suppressedCount, 1);
});

test('engine: a new session id starts fresh features and cool-downs', async () => {
  const e = engine();
  for (const x of ARTICLE) await e.onEvent(x);
  const r = await e.onEvent({ ...ARTICLE[0], session_id: 's2', event_id: 'n0', ts_ms: T0 + 9000 });
  assert.equal(e.features.featureDict().page_view_count, 1);
  assert.deepEqual(e.lastFired, {});
  assert.equal(r.vector[NAMES.indexOf('hover_ms_product_card')], 0);
});

test('engine: snapshot through JSON and restore continues the session with its cool-downs', async () => {
  const a = engine();
  for (const x of ARTICLE.slice(0, 3)) await a.onEvent(x);
  const b = engine();
  assert.equal(b.restore(JSON.parse(JSON.stringify(a.snapshot()))), true);
  assert.deepEqual(Array.from(b.features.vector()), Array.from(a.features.vector()));
  assert.equal(b.lastFired.deep_engagement_product, T0 + 2000);
  const more = ev(9, 'hover', { element_id: 'card', element_role: 'product_card', hover_ms: 500 });
  const [ra, rb] = [await a.onEvent(more), await b.onEvent({ ...more })];
  assert.deepEqual(Array.from(rb.vector), Array.from(ra.vector));
  assert.equal(rb.reason, 'cooldown:deep_engagement_product');
  assert.equal(b.restore({ features: { ...a.snapshot().features, spec_version: 99 }, last_fired: {} }), false);
});

test('session features refuse a spec of another version', () => {
  assert.throws(() => new SessionFeatures({ ...SPEC, spec_version: 2 }), /spec version 2/);
});

function quietTracker(options) {
  // every type "immediate": flush() at once (a no-op here), so no flush timer keeps node running
  const immediateTypes = ['page_view', 'click', 'scroll', 'hover', 'visibility', 'form', 'mouse_trajectory',
    'add_to_cart', 'purchase', 'exposure', 'intent'];
  const t = new Tracker({ autoPageView: false, mouse: false, immediateTypes, ...options });
  t.flush = () => Promise.resolve(); // nothing leaves this process
  return t;
}

test('tracker: event times never go backwards in capture order', () => {
  const t = quietTracker();
  const a = t.track('mouse_trajectory', { sample_count: 9 }, T0 + 5);
  const b = t.track('hover', { element_id: 'x', hover_ms: 300 }, T0 + 3);
  const c = t.track('click', { element_id: 'x' }, T0 + 8);
  assert.deepEqual([a.ts_ms, b.ts_ms, c.ts_ms], [T0 + 5, T0 + 5, T0 + 8]);
  assert.deepEqual([a.seq, b.seq, c.seq], [1, 2, 3]);
});

test('tracker with edge: provisional decision to the page, one intent event, never fed back', async () => {
  const decisions = [];
  const t = quietTracker({ edge: true, onEdgeDecision: (d) => decisions.push(d) });
  t.edge = engine(0.1);
  const sid = t.sessionId;
  const t1 = Date.now() - 5000; // near now: the intent event is stamped now, in the same session
  t._contextCache = { device_class: 'desktop', is_bot: false };
  t.track('page_view', {}, t1);
  t.track('scroll', { scroll_depth_pct: 75 }, t1 + 1000);
  t.track('hover', { element_id: 'card', element_role: 'product_card', hover_ms: 2400 }, t1 + 2000);
  await t.edge._chain;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(decisions.length, 1);
  const d = decisions[0];
  assert.equal(d.action, 'show_video_demo_and_price_comparison');
  assert.equal(d.source, 'edge');
  assert.equal(d.event_ts_ms, t1 + 2000);
  const intents = t.queue.filter((e) => e.type === 'intent');
  assert.ok(intents.length >= 1);
  const last = intents[intents.length - 1].props;
  assert.equal(last.action, 'show_video_demo_and_price_comparison');
  assert.equal(last.rule_id, 'deep_engagement_product');
  assert.equal(last.model_version, 'intent-lr/1');
  assert.equal(last.feature_hash, featureHash(t.edge.features.vector()));
  assert.equal(intents[0].session_id, sid);
  assert.equal(t.edge.stats.events, 3, 'intent events are not fed to the engine');
});

test('tracker with edge: events captured before the engine loads are replayed into it', async () => {
  const t = quietTracker({ edge: true });
  t._edgeBacklog = [];
  t._contextCache = { device_class: 'desktop', is_bot: false };
  t.track('page_view', {}, T0);
  t.track('scroll', { scroll_depth_pct: 40 }, T0 + 10);
  assert.equal(t._edgeBacklog.length, 2);
  const e = engine();
  const backlog = t._edgeBacklog;
  t._edgeBacklog = null;
  t.edge = e;
  for (const [event, at] of backlog) t._edgeEvent(event, at);
  await e._chain;
  assert.equal(e.features.featureDict().max_scroll_depth_pct, 40);
});

/** The collector's edge endpoints as a fake fetch (bodies from the checkout; ETag = a content digest). */
async function fakeCollector() {
  const { createHash } = await import('node:crypto');
  const blob = readFileSync(join(ROOT, 'models', 'intent-lr', '1', 'model.onnx'));
  const manifest = JSON.parse(readFileSync(join(ROOT, 'models', 'intent-lr', '1', 'manifest.json'), 'utf8'));
  const model = { name: 'intent-lr', version: 1, model_version: 'intent-lr/1', sha256: manifest.sha256,
    features: manifest.features.map((f) => f.name), input_name: 'features', output_name: 'intent_score',
    model_base64: blob.toString('base64') };
  const bodies = { '/sdk/edge-spec.v1.json': SPEC, '/v1/models/intent-lr/current': model, '/v1/rules': RULESET };
  const requests = [];
  const fetch = async (url, init = {}) => {
    const path = url.replace('http://collector', '');
    const text = bodies[path] === undefined ? '' : JSON.stringify(bodies[path]);
    const etag = `"${createHash('sha256').update(text).digest('hex').slice(0, 16)}"`;
    const conditional = (init.headers || {})['If-None-Match'];
    requests.push([path, conditional ? 'conditional' : 'plain']);
    const status = bodies[path] === undefined ? 404 : conditional === etag ? 304 : 200;
    return { status, ok: status === 200, headers: { get: (h) => (h === 'ETag' ? etag : null) }, text: async () => text };
  };
  return { bodies, fetch, requests };
}

test('loadEdge + refresh: conditional GETs, a newer ruleset is taken, features and cool-downs kept', async () => {
  const { createRequire } = await import('node:module');
  const ort = await import(createRequire(join(ROOT, 'web', 'package.json')).resolve('onnxruntime-web'));
  ort.env.wasm.numThreads = 1;
  const { loadEdge } = await import('../../web/sdk/edge.js');
  const c = await fakeCollector();
  const { engine } = await loadEdge({ baseUrl: 'http://collector', ort, fetch: c.fetch });
  for (const x of ARTICLE.slice(0, 3)) await engine.onEvent(x);
  assert.deepEqual(await engine.refresh(), { rules: false, model: false });
  assert.deepEqual(c.requests.slice(-2).map((r) => r[1]), ['conditional', 'conditional']);

  const newer = JSON.parse(JSON.stringify(RULESET));
  newer.rules_version = '2026-12-02.9';
  newer.rules.find((r) => r.id === 'deep_engagement_product').cooldown_ms = 0;
  c.bodies['/v1/rules'] = newer;
  const before = Array.from(engine.features.vector());
  assert.deepEqual(await engine.refresh(), { rules: true, model: false });
  assert.equal(engine.rulesVersion, '2026-12-02.9');
  assert.deepEqual(Array.from(engine.features.vector()), before);
  assert.equal(engine.lastFired.deep_engagement_product, T0 + 2000);
  const r = await engine.onEvent(ev(5, 'hover', { element_id: 'card', element_role: 'product_card', hover_ms: 300 }));
  assert.equal(r.decision.rules_version, '2026-12-02.9', 'the new ruleset (no cool-down) decides');
  assert.ok(r.intent_score > 0 && r.intent_score < 1);

  c.bodies['/v1/rules'] = undefined;
  await assert.rejects(engine.refresh(), /HTTP 404/);
  assert.equal(engine.rulesVersion, '2026-12-02.9', 'a failed refresh keeps what the engine had');
});
