/**
 * Demo product page: starts the capture SDK, polls this session's decision and re-renders.
 *
 * Query parameters (all optional): `poll_ms` (decision poll interval, ms, default 200: below the seed
 * article's 200-300 ms "perceived responsiveness" threshold), `endpoint` (collector URL, default
 * `/v1/events`), `decision` (decision API URL, default `/v1/decision`).
 *
 * State for tests and the console: `window.intentflowDemo` = {tracker, applied: [{action, source,
 * rule_id, decided_at_ms, applied_at_ms}], lastDecision}; `<body data-if-action>` names the action
 * rendered, `#decision-status` shows it.
 */
import { init, nowMs } from '/sdk/intentflow.js';

const query = new URLSearchParams(location.search);
const POLL_MS = Number(query.get('poll_ms') || 200);
const DECISION_URL = query.get('decision') || '/v1/decision';
const tracker = init({ endpoint: query.get('endpoint') || '/v1/events' });
const state = { tracker, applied: [], lastDecision: null, polls: 0, pollErrors: 0 };
window.intentflowDemo = state;

const $ = (id) => document.getElementById(id);
const RELATED_ORDER = Array.from($('related-list').children).map((li) => li.dataset.itemId);

function resetLayout() {
  document.body.classList.remove('layout-simple');
  for (const id of ['video-demo', 'price-comparison', 'key-facts']) $(id).hidden = true;
  for (const id of ['video-demo', 'price-comparison', 'key-facts']) $(id).classList.remove('personalized');
  const list = $('related-list');
  for (const itemId of RELATED_ORDER) {
    const li = list.querySelector(`[data-item-id="${itemId}"]`);
    li.classList.remove('boosted');
    list.appendChild(li);
  }
}

/** Actions of docs/contracts.md §4 -> what the page shows. Unknown actions render the default page. */
const RENDERERS = {
  default() { return []; },
  show_video_demo_and_price_comparison() {
    for (const id of ['video-demo', 'price-comparison']) { $(id).hidden = false; $(id).classList.add('personalized'); }
    return ['video_demo', 'price_comparison'];
  },
  simplify_layout() {
    document.body.classList.add('layout-simple');
    $('key-facts').hidden = false;
    $('key-facts').classList.add('personalized');
    return ['key_facts'];
  },
  rerank_towards_item(params) {
    const list = $('related-list');
    const target = params.item_id || params.target_item_id;
    const li = target ? list.querySelector(`[data-item-id="${CSS.escape(String(target))}"]`) : null;
    if (!li) return [];
    li.classList.add('boosted');
    list.prepend(li);
    return [`related:${target}`];
  },
};

function apply(decision) {
  const action = decision.action in RENDERERS ? decision.action : 'default';
  const key = `${action}|${decision.rule_id || ''}|${decision.decided_at_ms || ''}|${decision.event_id || ''}`;
  const status = $('decision-status');
  status.dataset.ifDecisionSource = decision.source || 'unknown';
  if (key === state.appliedKey) return;
  state.appliedKey = key;
  resetLayout();
  const shown = RENDERERS[action](decision.params || {});
  document.body.dataset.ifAction = action;
  status.textContent = `decision: ${action} (${decision.source}${decision.rule_id ? `, ${decision.rule_id}` : ''})`;
  const appliedAtMs = nowMs();
  state.applied.push({ action, source: decision.source, rule_id: decision.rule_id || null,
    decided_at_ms: decision.decided_at_ms || null, event_ts_ms: decision.event_ts_ms || null, applied_at_ms: appliedAtMs });
  // feedback loop: what the visitor was shown is an event too
  for (const contentId of shown) {
    tracker.track('exposure', { experiment_id: decision.rule_id || null, variant: action, content_id: contentId });
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
