// Pure logic of the capture SDK (web/sdk/intentflow.js), on node's built-in test runner:
//   node --test tests/unit/test_sdk.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import {
  BEACON_LIMIT_BYTES, SESSION_INACTIVITY_MS, Tracker, deviceClassHint, resolveSession, scrollDepth,
  splitIntoBodies, summarizeTrajectory, utf8Bytes,
} from '../../web/sdk/intentflow.js';
import { buildIife, SOURCE, TARGET } from '../../web/sdk/build.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** samples every dtMs along x = f(t_s), y = 0 */
function along(f, n, dtMs = 16) {
  return Array.from({ length: n }, (_, i) => ({ t_ms: 1000 + i * dtMs, x_px: f((i * dtMs) / 1000), y_px: 0 }));
}

test('trajectory: straight line at constant speed', () => {
  const s = summarizeTrajectory(along((t) => 500 * t, 11, 20)); // 500 px/s for 200 ms
  assert.equal(s.sample_count, 11);
  assert.equal(s.duration_ms, 200);
  assert.equal(s.path_length_px, 100);
  assert.equal(s.straightness, 1);
  assert.equal(s.mean_speed_px_s, 500);
  assert.equal(s.jerk_px_s3, 0);
  assert.equal(s.pause_count, 0);
});

test('trajectory: right angle has straightness 1/sqrt(2)', () => {
  const pts = [{ t_ms: 0, x_px: 0, y_px: 0 }, { t_ms: 100, x_px: 100, y_px: 0 }, { t_ms: 200, x_px: 100, y_px: 100 }];
  const s = summarizeTrajectory(pts);
  assert.equal(s.path_length_px, 200);
  assert.ok(Math.abs(s.straightness - Math.SQRT1_2) < 1e-3, String(s.straightness));
  assert.equal(s.mean_speed_px_s, 1000);
});

test('trajectory: jerk of x = k t^3 is 6k px/s^3', () => {
  const k = 2000;
  const s = summarizeTrajectory(along((t) => k * t ** 3, 30, 10));
  assert.ok(Math.abs(s.jerk_px_s3 - 6 * k) / (6 * k) < 1e-6, String(s.jerk_px_s3));
  const accel = summarizeTrajectory(along((t) => 900 * t ** 2, 30, 10)); // constant acceleration
  assert.ok(accel.jerk_px_s3 < 1e-6, String(accel.jerk_px_s3));
});

test('trajectory: pauses are runs slower than 20 px/s lasting >= 100 ms', () => {
  const move = (t0, x0, n) => Array.from({ length: n }, (_, i) => ({ t_ms: t0 + i * 10, x_px: x0 + i * 5, y_px: 0 }));
  const still = (t0, x, n) => Array.from({ length: n }, (_, i) => ({ t_ms: t0 + i * 10, x_px: x, y_px: 0 }));
  const long = [...move(0, 0, 10), ...still(100, 45, 15), ...move(250, 46, 10)]; // 150 ms still
  assert.equal(summarizeTrajectory(long).pause_count, 1);
  const short = [...move(0, 0, 10), ...still(100, 45, 5), ...move(150, 46, 10)]; // 50 ms still
  assert.equal(summarizeTrajectory(short).pause_count, 0);
  const two = [...move(0, 0, 10), ...still(100, 45, 15), ...move(250, 46, 10), ...still(350, 91, 15), ...move(500, 92, 5)];
  assert.equal(summarizeTrajectory(two).pause_count, 2);
});

test('trajectory: degenerate inputs', () => {
  assert.equal(summarizeTrajectory([]).sample_count, 0);
  const one = summarizeTrajectory([{ t_ms: 5, x_px: 1, y_px: 1 }]);
  assert.deepEqual([one.path_length_px, one.straightness, one.duration_ms], [0, 0, 0]);
  const dup = summarizeTrajectory([{ t_ms: 5, x_px: 0, y_px: 0 }, { t_ms: 5, x_px: 50, y_px: 0 }, { t_ms: 15, x_px: 10, y_px: 0 }]);
  assert.equal(dup.sample_count, 2, 'a sample at the same timestamp is skipped');
  assert.equal(dup.path_length_px, 10);
  const still = summarizeTrajectory([{ t_ms: 0, x_px: 3, y_px: 3 }, { t_ms: 16, x_px: 3, y_px: 3 }]);
  assert.equal(still.straightness, 0);
  assert.equal(still.mean_speed_px_s, 0);
});

function fakeEvents(n, padChars, padChar = 'x') {
  return Array.from({ length: n }, (_, i) => ({ event_id: `e${i}`, type: 'hover', props: { element_id: padChar.repeat(padChars), i } }));
}

test('split: bodies never exceed the 64 KiB beacon limit and lose nothing', () => {
  assert.equal(BEACON_LIMIT_BYTES, 65536);
  const events = fakeEvents(400, 600); // ~250 KB
  const bodies = splitIntoBodies(events, BEACON_LIMIT_BYTES, 1234);
  assert.ok(bodies.length >= 4, `expected several bodies, got ${bodies.length}`);
  const ids = [];
  for (const b of bodies) {
    assert.ok(b.bytes <= BEACON_LIMIT_BYTES, `body of ${b.bytes} bytes`);
    assert.equal(b.bytes, Buffer.byteLength(b.body));
    assert.equal(b.oversize, false);
    const parsed = JSON.parse(b.body);
    assert.equal(parsed.sent_at_ms, 1234);
    assert.deepEqual(parsed.events.map((e) => e.event_id), b.eventIds);
    for (const e of parsed.events) assert.equal(e.sent_at_ms, 1234);
    ids.push(...b.eventIds);
  }
  assert.deepEqual(ids, events.map((e) => e.event_id), 'every event once, in order');
  // bodies are packed: all but the last are more than half full
  for (const b of bodies.slice(0, -1)) assert.ok(b.bytes > BEACON_LIMIT_BYTES / 2);
});

test('split: the limit counts UTF-8 bytes, not characters', () => {
  const events = fakeEvents(100, 300, '€'); // 3 bytes per character
  const bodies = splitIntoBodies(events, 20000, 1);
  for (const b of bodies) assert.ok(Buffer.byteLength(b.body) <= 20000, `${Buffer.byteLength(b.body)} bytes`);
  assert.equal(bodies.flatMap((b) => b.eventIds).length, 100);
  assert.equal(utf8Bytes('€'), 3);
});

test('split: an event bigger than the limit travels alone, flagged oversize', () => {
  const events = [...fakeEvents(2, 10), { event_id: 'big', type: 'hover', props: { element_id: 'y'.repeat(70000) } }, ...fakeEvents(1, 10)];
  events[3].event_id = 'last';
  const bodies = splitIntoBodies(events, BEACON_LIMIT_BYTES, 1);
  assert.deepEqual(bodies.map((b) => [b.eventIds, b.oversize]), [[['e0', 'e1'], false], [['big'], true], [['last'], false]]);
});

test('scroll depth: short pages are 100 %, raw kept beyond 100, clamped value within 0-100', () => {
  assert.deepEqual(scrollDepth(0, 800, 500), { scroll_depth_pct: 100, scroll_depth_pct_raw: 160 });
  assert.deepEqual(scrollDepth(0, 800, 0), { scroll_depth_pct: 100, scroll_depth_pct_raw: 100 });
  assert.deepEqual(scrollDepth(1200, 800, 4000), { scroll_depth_pct: 50, scroll_depth_pct_raw: 50 });
  // a page that grew from 2000 to 4000 px: the same offset is now a smaller share
  assert.equal(scrollDepth(1200, 800, 2000).scroll_depth_pct, 100);
  assert.equal(scrollDepth(1200, 800, 4000).scroll_depth_pct, 50);
});

test('session: rolls over after 30 min of inactivity, not before', () => {
  assert.equal(SESSION_INACTIVITY_MS, 1800000);
  const stored = { id: 'abc', last_activity_ms: 1_000_000, seq: 7, started_at_ms: 900_000 };
  const same = resolveSession(1_000_000 + SESSION_INACTIVITY_MS - 1, SESSION_INACTIVITY_MS, stored);
  assert.equal(same.id, 'abc');
  assert.equal(same.seq, 7);
  const next = resolveSession(1_000_000 + SESSION_INACTIVITY_MS, SESSION_INACTIVITY_MS, stored);
  assert.notEqual(next.id, 'abc');
  assert.equal(next.seq, 0);
  assert.equal(next.rolled, true);
  assert.match(next.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('device class hints', () => {
  const desk = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
  assert.equal(deviceClassHint({ userAgent: desk }), 'desktop');
  assert.equal(deviceClassHint({ userAgent: desk.replace('Chrome/', 'HeadlessChrome/') }), 'bot');
  assert.equal(deviceClassHint({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148' }), 'mobile');
  assert.equal(deviceClassHint({ userAgent: 'Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)' }), 'tablet');
  assert.equal(deviceClassHint({}), 'unknown');
});

test('retry after a 503 resends the same event ids (no duplicates created)', async () => {
  const posted = [];
  let calls = 0;
  const saved = globalThis.fetch;
  globalThis.fetch = async (_url, init) => {
    calls += 1;
    const events = JSON.parse(init.body).events;
    posted.push({ ids: events.map((e) => e.event_id), keepalive: init.keepalive,
      sessionSeq: events.map((e) => [e.session_id, e.seq]) });
    return { ok: calls > 1, status: calls > 1 ? 202 : 503 };
  };
  try {
    const tr = new Tracker({ endpoint: 'http://collector.invalid/v1/events', flushIntervalMs: 100000, autoPageView: false });
    const ids = [tr.track('scroll', { scroll_depth_pct: 10 }).event_id, tr.track('scroll', { scroll_depth_pct: 20 }).event_id];
    await tr.flush();
    assert.equal(tr.queue.length, 2, 'failed events stay queued');
    clearTimeout(tr._timer); tr._timer = null;
    await tr.flush();
    assert.equal(tr.queue.length, 0);
    assert.deepEqual(posted.map((p) => p.ids), [ids, ids]);
    assert.ok(posted.every((p) => p.keepalive === true));
    assert.equal(tr.stats.sent_events, 2);
    // the retry re-sends the same events: session id and seq are those of the first attempt
    assert.deepEqual(posted[1].sessionSeq, posted[0].sessionSeq);
    assert.deepEqual(posted[0].sessionSeq.map(([sid]) => sid), [tr.sessionId, tr.sessionId]);
    assert.equal(posted[0].sessionSeq[1][1], posted[0].sessionSeq[0][1] + 1);
  } finally {
    globalThis.fetch = saved;
  }
});

test('the script-tag build is generated from the module and up to date', () => {
  const source = readFileSync(SOURCE, 'utf8');
  assert.equal(readFileSync(TARGET, 'utf8'), buildIife(source), 'run `node web/sdk/build.mjs`');
  const sandbox = { console };
  sandbox.globalThis = sandbox;
  vm.runInNewContext(readFileSync(join(ROOT, 'web', 'sdk', 'intentflow.iife.js'), 'utf8'), sandbox);
  assert.equal(typeof sandbox.IntentFlow.init, 'function');
  assert.equal(sandbox.IntentFlow.BEACON_LIMIT_BYTES, 65536);
  assert.equal(sandbox.IntentFlow.summarizeTrajectory(along((t) => 500 * t, 11, 20)).mean_speed_px_s, 500);
});

test('without analytics consent nothing is captured', () => {
  const tr = new Tracker({ consent: { analytics: false, personalization: false }, autoPageView: false });
  assert.equal(tr.track('click', { element_id: 'x' }), null);
  assert.equal(tr.queue.length, 0);
  assert.equal(tr.stats.captured, 0);
});

test('exposure: one event per experiment, arm and content; none outside an experiment', () => {
  const tr = new Tracker({ flushIntervalMs: 100000, autoPageView: false });
  const held = { action: 'default', source: 'holdout', experiment_id: 'exp-1', arm: 'holdout' };
  const e = tr.exposure(held);
  assert.deepEqual(e.props, { experiment_id: 'exp-1', variant: 'holdout', content_id: 'default' });
  assert.equal(e.type, 'exposure');
  assert.equal(tr.exposure(held), null, 'the same exposure is sent once');
  const served = { action: 'simplify_layout', experiment_id: 'exp-1', arm: 'personalized' };
  assert.equal(tr.exposure(served, 'key_facts').props.variant, 'personalized');
  assert.equal(tr.exposure({ action: 'simplify_layout' }, 'key_facts'), null);
  assert.equal(tr.exposure(null), null);
  assert.equal(tr.queue.filter((q) => q.type === 'exposure').length, 2);
  clearTimeout(tr._timer);
});

test('edge: no provisional action for a visitor in the holdout arm', async () => {
  const seen = [];
  const tr = new Tracker({ flushIntervalMs: 100000, autoPageView: false, onEdgeDecision: (d) => seen.push(d) });
  const result = { decided_at: 2, captured_at: 1, event: { event_id: 'e1' }, intent_score: 0.9, vector: new Float32Array(2),
    feature_hash: 'fnv1a32:0', model_version: 'm/1', rules_version: 'r.1',
    decision: { action: 'simplify_layout', rule_id: 'shallow_engagement', params: {} } };
  tr.edge = { rules: { experiment: { id: 'exp-1', holdout_pct: 100 } } };
  assert.equal(tr._edgeArm(), null, 'unknown until hashed: nothing shown');
  await tr._armPromise;
  assert.equal(tr._edgeArm(), 'holdout');
  tr._edgeResult(result);
  assert.equal(seen.length, 0);
  tr.edge = { rules: { experiment: { id: 'exp-1', holdout_pct: 0 } } };
  tr._edgeResult(result);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].action, 'simplify_layout');
  clearTimeout(tr._timer);
});

test('page type: the pageType option becomes page.type; anything but the three contract types is null', () => {
  const typed = new Tracker({ pageType: 'informational', autoPageView: false, flushIntervalMs: 100000 });
  assert.equal(typed.page().type, 'informational');
  const other = new Tracker({ pageType: 'landing', autoPageView: false, flushIntervalMs: 100000 });
  assert.equal(other.page().type, null);
  const none = new Tracker({ autoPageView: false, flushIntervalMs: 100000 });
  assert.equal(none.page().type, null);
  for (const t of [typed, other, none]) { clearTimeout(t._timer); t._timer = null; }
});
