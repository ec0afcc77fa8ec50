#!/usr/bin/env node
// Runs web/sdk/edge.js over golden fixtures written by tests/unit/test_edge_parity.py and prints what
// the JavaScript computed, for Python to compare:  node tests/unit/edge_parity.mjs FIXTURE.json OUT.json
//
// Fixture: {spec, model (GET /v1/models/<name>/current body), ruleset, sessions: [{events: [...]}],
//           shuffled: [{events}], rule_cases: [{ruleset, cases: [{vector, intent_score, event, last_fired}]}]}
// Output:  {sessions: [[{event_id, status, reason, features, intent_score?, decision?, rule_reason?,
//           feature_hash?}]], orders: [[event_id]], rule_cases: [[{decision, reason}]]}
// onnxruntime-web runs on its wasm backend in node (web/node_modules). Halfway through each session the
// feature state is snapshotted to JSON and restored (what the SDK does between two pages of a session).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  EdgeScorer, RuleEvaluator, SessionFeatures, eventOrderCompare, featureHash,
} from '../../web/sdk/edge.js';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const ort = await import(createRequire(join(WEB, 'package.json')).resolve('onnxruntime-web'));
ort.env.wasm.numThreads = 1;

const [fixturePath, outPath] = process.argv.slice(2);
const fx = JSON.parse(readFileSync(fixturePath, 'utf8'));
const names = fx.spec.features.map((f) => f.name);
const scorer = await EdgeScorer.load(ort, fx.model, names);
const rules = new RuleEvaluator(fx.ruleset, names);

const sessions = [];
for (const s of fx.sessions) {
  let feats = new SessionFeatures(fx.spec, { visitCount: s.visit_count || 1 });
  const lastFired = {};
  const rows = [];
  const half = Math.floor(s.events.length / 2);
  for (const [k, event] of s.events.entries()) {
    // mid-session the state goes through JSON, as it does between two pages of a site
    if (k === half) feats = SessionFeatures.restore(fx.spec, JSON.parse(JSON.stringify(feats.snapshot())));
    const outcome = feats.apply(event);
    const vector = feats.vector();
    const row = { event_id: event.event_id, status: outcome.status, reason: outcome.reason, features: Array.from(vector) };
    if (outcome.status === 'applied') {
      const score = await scorer.score(vector);
      const { decision, reason } = rules.evaluate(vector, score, event, lastFired);
      if (decision) lastFired[decision.rule_id] = decision.event_ts_ms;
      Object.assign(row, { intent_score: score, decision, rule_reason: reason, feature_hash: featureHash(vector) });
      if (decision) delete decision.priority;
    }
    rows.push(row);
  }
  sessions.push(rows);
}

const orders = fx.shuffled.map((s) => [...s.events].sort(eventOrderCompare).map((e) => e.event_id));

const ruleCases = fx.rule_cases.map((group) => {
  const ev = new RuleEvaluator(group.ruleset, names);
  return group.cases.map((c) => {
    const { decision, reason } = ev.evaluate(Float32Array.from(c.vector), c.intent_score, c.event, c.last_fired);
    if (decision) delete decision.priority;
    return { decision, reason };
  });
});

writeFileSync(outPath, JSON.stringify({ sessions, orders, rule_cases: ruleCases }));
