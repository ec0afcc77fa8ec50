/**
 * Demo product page: starts the capture SDK, polls this session's decision and re-renders.
 *
 * Query parameters (all optional): `poll_ms` (decision poll interval, ms, default 200: below the seed
 * article's 200-300 ms "perceived responsiveness" threshold), `endpoint` (collector URL, default
 * `/v1/events`), `decision` (decision API URL, default `/v1/decision`), `edge=1` (score in the
 * browser too: a provisional action is shown at once, marked "edge", until the server's decision for
 * that signal or a later one replaces it; docs/edge.md).
 *
 * State for tests and the console: `window.intentflowDemo` = {tracker, applied: [{action, source,
 * rule_id, decided_at_ms, applied_at_ms, applied_at_perf_ms}], lastDecision, provisional}; `<body data-if-action>`
 * names the action rendered, `#decision-status` shows it and where it came from
 * (`data-if-decision-source`: `edge` while provisional, then the server's `redis`).
 */
import { init, nowMs } from '/sdk/intentflow.js';

const query = new URLSearchParams(location.search);
const POLL_MS = Number(query.get('poll_ms') || 200);
const DECISION_URL = query.get('decision') || '/v1/decision';
const EDGE = query.get('edge') === '1';
const tracker = init({ endpoint: query.get('endpoint') || '/v1/events', edge: EDGE,
  onEdgeDecision: EDGE ? (d) => applyProvisional(d) : undefined });
const state = { tracker, applied: [], lastDecision: null, polls: 0, pollErrors: 0, provisional: null };
window.intentflowDemo = state;

const $ = (id) => document.getElementById(id);
const RELATED_ORDER = Array.from($('related-list').children).map((li) => li.dataset.itemId);

/**
 * What the page shows, built up from the session's actions: a later action changes only what it is
 * about, so a re-rank after "show video demo" keeps the video (the job sends one action per event,
 * the latest wins in Redis, docs/contracts.md §5).
 */
let view = { video: false, simple: false, rerankItem: null };
/** The server's view while a provisional (edge) action is shown on top of it. */
let serverView = null;

function render() {
  document.body.classList.toggle('layout-simple', view.simple);
  $('key-facts').hidden = !view.simple;
  $('key-facts').classList.toggle('personalized', view.simple);
  for (const id of ['video-demo', 'price-comparison']) {
    $(id).hidden = !view.video;
    $(id).classList.toggle('personalized', view.video);
  }
  const list = $('related-list');
  const items = RELATED_ORDER.map((itemId) => list.querySelector(`[data-item-id="${itemId}"]`));
  const target = view.rerankItem;
  const rank = (li) => {
    if (!target) return 2;
    if (li.dataset.itemId === target) return 0;
    return (li.dataset.ifAffinity || '').split(/\s+/).includes(target) ? 1 : 2;
  };
  items.sort((a, b) => rank(a) - rank(b)); // stable: the default order within each rank
  for (const li of items) {
    li.classList.toggle('boosted', rank(li) < 2);
    list.appendChild(li);
  }
}

/**
 * Actions of docs/contracts.md §4 -> changes of the view; each returns the content ids it showed
 * (sent back as `exposure` events). Unknown actions change nothing.
 */
const ACTIONS = {
  default() { return []; },
  show_video_demo_and_price_comparison() {
    view.video = true;
    view.simple = false;
    return ['video_demo', 'price_comparison'];
  },
  simplify_layout() {
    view.simple = true;
    view.video = false;
    return ['key_facts'];
  },
  rerank_towards_item(params) {
    const target = params.item_id ?? params.target_item_id;
    if (target === undefined || target === null) return [];
    view.rerankItem = String(target);
    return [`related:${view.rerankItem}`];
  },
};

/**
 * A provisional action computed in the browser (SDK option `edge: true`): shown at once, on top of
 * what the server decided so far; the server's decision for this signal (or a later one) replaces it.
 */
function applyProvisional(decision) {
  if (!(decision.action in ACTIONS)) return;
  // a visitor the server put in the experiment's holdout sees no personalization, provisional or not
  // (before the first server answer the browser cannot know the arm: docs/experiments.md, limits)
  if (state.lastDecision && state.lastDecision.source === 'holdout') return;
  if (serverView === null) serverView = { ...view };
  ACTIONS[decision.action](decision.params || {});
  render();
  state.provisional = decision;
  document.body.dataset.ifAction = decision.action;
  const status = $('decision-status');
  status.dataset.ifDecisionSource = 'edge';
  status.textContent = `decision: ${decision.action} (edge, provisional, ${decision.rule_id})`;
  state.applied.push({ action: decision.action, source: 'edge', rule_id: decision.rule_id,
    decided_at_ms: null, event_ts_ms: decision.event_ts_ms, applied_at_ms: nowMs(),
    applied_at_perf_ms: performance.now(), intent_score: decision.intent_score, event_id: decision.event_id });
}

function apply(decision) {
  const action = decision.action in ACTIONS ? decision.action : 'default';
  const status = $('decision-status');
  const provisional = state.provisional;
  // the server has decided on the provisional action's signal or a later one: its view replaces it
  if (provisional && action !== 'default' && (decision.event_ts_ms || 0) >= provisional.event_ts_ms) {
    view = serverView || view;
    serverView = null;
    state.provisional = null;
    state.appliedKey = null;
  }
  if (state.provisional) return; // the server has not caught up yet: keep the provisional action
  status.dataset.ifDecisionSource = decision.source || 'unknown';
  // holdout: the server decided (a shadow action) but serves the default layout, which the page keeps;
  // logging that exposure is what makes the holdout's conversions comparable (docs/experiments.md)
  if (decision.source === 'holdout') tracker.exposure(decision, 'default');
  if (action === 'default') return; // no decision (yet, or expired): keep what is shown
  const key = `${action}|${decision.rule_id || ''}|${decision.decided_at_ms || ''}|${decision.event_id || ''}`;
  if (key === state.appliedKey) return;
  state.appliedKey = key;
  const before = { ...view };
  const shown = ACTIONS[action](decision.params || {});
  render();
  // a repeated decision (same action, later event) changes nothing on screen: no new exposure
  const changed = before.video !== view.video || before.simple !== view.simple || before.rerankItem !== view.rerankItem;
  document.body.dataset.ifAction = action;
  status.textContent = `decision: ${action} (${decision.source}${decision.rule_id ? `, ${decision.rule_id}` : ''})`;
  const appliedAtMs = nowMs();
  state.applied.push({ action, source: decision.source, rule_id: decision.rule_id || null,
    decided_at_ms: decision.decided_at_ms || null, event_ts_ms: decision.event_ts_ms || null, applied_at_ms: appliedAtMs,
    applied_at_perf_ms: performance.now(), intent_score: decision.intent_score ?? null });
  // feedback loop: what the visitor was shown is an event too
  for (const contentId of changed ? shown : []) {
    if (decision.experiment_id) tracker.exposure(decision, contentId); // experiment id and arm (docs/experiments.md)
    else tracker.track('exposure', { experiment_id: decision.rule_id || 'default', variant: action, content_id: contentId });
  }
}

async function poll() {
  state.polls += 1;
  try {
    const res = await fetch(`${DECISION_URL}?session_id=${encodeURIComponent(tracker.sessionId)}`, { cache: 'no-store' });
    if (res.ok) {
      state.lastDecision = await res.json();
      apply(state.lastDecision);
    } else {
      state.pollErrors += 1;
    }
  } catch (_e) {
    state.pollErrors += 1;
  }
}

function loop() {
  if (document.visibilityState === 'visible') poll();
  setTimeout(loop, POLL_MS);
}

$('add-to-cart').addEventListener('click', () => {
  tracker.track('add_to_cart', { item_id: 'laptop-aurora-14', quantity: 1, price: 1299 });
  $('cart-note').hidden = false;
});
$('price-alert').addEventListener('submit', (e) => { e.preventDefault(); $('price-alert').reset(); });

loop();
