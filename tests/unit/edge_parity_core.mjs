// The parity run over golden fixtures, shared by node (tests/unit/edge_parity.mjs) and headless Chromium
// (tests/browser/test_edge_browser.py serves this file and runs it in the page).
//
// runParity(fx, edge, ort) -> {sessions, orders, rule_cases}:
//   fx   {spec, model (GET /v1/models/<name>/current body), ruleset, sessions: [{events, visit_count?}],
//         shuffled: [{events}], rule_cases: [{ruleset, cases: [{vector, intent_score, event, last_fired}]}]}
//   edge the module web/sdk/edge.js; ort the onnxruntime-web module (wasm backend).
// Halfway through each session the feature state is snapshotted to JSON and restored (what the SDK does
// between two pages of a session).

export async function runParity(fx, edge, ort) {
  const { EdgeScorer, RuleEvaluator, SessionFeatures, eventOrderCompare, featureHash } = edge;
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
      if (k === half) feats = SessionFeatures.restore(fx.spec, JSON.parse(JSON.stringify(feats.snapshot())));
      const outcome = feats.apply(event);
      const vector = feats.vector();
      const row = { event_id: event.event_id, status: outcome.status, reason: outcome.reason, features: Array.from(vector) };
      if (outcome.status === 'applied') {
        const score = await scorer.score(vector);
        const { decision, reason } = rules.evaluate(vector, score, event, lastFired);
        if (decision) {
          lastFired[decision.rule_id] = decision.event_ts_ms;
          delete decision.priority;
        }
        Object.assign(row, { intent_score: score, decision, rule_reason: reason, feature_hash: featureHash(vector) });
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
  return { sessions, orders, rule_cases: ruleCases };
}
