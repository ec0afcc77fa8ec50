/**
 * The demo product page instrumented with one official tracker instead of our SDK (tests/browser).
 * Loaded by /tracker-demo/{tracker}/ (tests/browser/tracker_support.py) after the tracker's own bundle
 * from web/node_modules. `window.trackerDemo = {tracker, ready, sent}`.
 *
 * What each page does is what a team running that tracker would write: the tracker's own automatic
 * capture where it has one, and the tracker's own API for the rest:
 *   snowplow  (`?method=get`: the pixel GET /i instead of POST tp2)
 *             page view + activity tracking (page pings carry the scroll offsets); clicks and hovers on
 *             [data-if-role] elements as structured events (se_ac click / hover, se_la id, se_pr role,
 *             se_va hover ms); the product as the ecommerce `product` context entity.
 *   segment   page() + 'Product Viewed'; 'Element Clicked', 'Element Hovered' and 'Page Scrolled'
 *             track calls with our property names (Segment's specs have no such events).
 *   rrweb     rrweb.record(); the page posts the recorded events to /v1/rrweb every 250 ms with its
 *             session id and the document height (rrweb itself has no transport).
 *   posthog   posthog.init with autocapture, page views/leaves and session recording.
 */
(function () {
  const tracker = document.documentElement.dataset.tracker;
  const origin = location.origin;
  const state = { tracker, ready: false, sent: 0, errors: [] };
  window.trackerDemo = state;
  const itemId = document.querySelector('meta[name="intentflow:item-id"]').content;
  const roleOf = (el) => el.getAttribute('data-if-role');
  const idOf = (el) => el.getAttribute('data-if-id');
  const docHeight = () => Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);

  /** Calls `onClick(el)` for a click inside an element our page marks with a role (the innermost
   * one) and `onHover(el, hoverMs)` when the pointer leaves such an element. */
  function wireElements(onClick, onHover) {
    for (const el of document.querySelectorAll('[data-if-role]')) {
      let enteredAt = null;
      el.addEventListener('mouseenter', () => { enteredAt = performance.now(); });
      el.addEventListener('mouseleave', () => {
        if (enteredAt === null) return;
        const ms = Math.round(performance.now() - enteredAt);
        enteredAt = null;
        if (ms >= 100) onHover(el, ms);
      });
    }
    document.addEventListener('click', (e) => {
      const el = e.target && e.target.closest ? e.target.closest('[data-if-role]') : null;
      if (el) onClick(el);
    }, true);
  }

  if (tracker === 'snowplow') {
    const sp = window.snowplowBrowserTracking;
    const eventMethod = new URLSearchParams(location.search).get('method') || 'post';
    sp.newTracker('sp', origin, { appId: 'intentflow-demo', eventMethod, bufferSize: 1,
      contexts: { webPage: true, session: true } });
    sp.enableActivityTracking({ minimumVisitLength: 1, heartbeatDelay: 1 });
    const product = [{ schema: 'iglu:com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0',
      data: { id: itemId, name: 'Aurora 14 Pro', category: 'laptops', price: 1299, currency: 'USD' } }];
    sp.trackPageView({ context: product });
    wireElements(
      (el) => sp.trackStructEvent({ category: 'ui', action: 'click', label: idOf(el), property: roleOf(el), context: product }),
      (el, ms) => sp.trackStructEvent({ category: 'ui', action: 'hover', label: idOf(el), property: roleOf(el), value: ms, context: product }),
    );
    state.ready = true;
  } else if (tracker === 'segment') {
    const analytics = window.AnalyticsNext.AnalyticsBrowser.load({
      writeKey: 'demo-write-key',
      cdnSettings: { integrations: { 'Segment.io': { apiKey: 'demo-write-key', apiHost: `${location.host}/v1`, protocol: 'http' } } },
    }, { integrations: { 'Segment.io': { apiHost: `${location.host}/v1`, protocol: 'http' } } });
    analytics.ready(() => { state.ready = true; });
    analytics.page('Product', { title: document.title });
    analytics.track('Product Viewed', { product_id: itemId, name: 'Aurora 14 Pro', price: 1299 });
    wireElements(
      (el) => analytics.track('Element Clicked', { element_id: idOf(el), element_role: roleOf(el) }),
      (el, ms) => analytics.track('Element Hovered', { element_id: idOf(el), element_role: roleOf(el), hover_ms: ms }),
    );
    let lastPct = 0;
    addEventListener('scroll', () => {
      const pct = ((scrollY + innerHeight) / docHeight()) * 100;
      if (pct >= lastPct + 10 || (pct >= 99 && lastPct < 99)) {
        lastPct = pct;
        analytics.track('Page Scrolled', { scroll_depth_pct: pct, offset_px: scrollY, document_height_px: docHeight() });
      }
    }, { passive: true });
  } else if (tracker === 'rrweb') {
    const sessionId = `rrweb-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    state.sessionId = sessionId;
    let buffer = [];
    window.rrweb.record({ emit(event) { buffer.push(event); }, sampling: { mousemove: 50, scroll: 150 } });
    const flush = () => {
      if (!buffer.length) return Promise.resolve();
      const events = buffer;
      buffer = [];
      return fetch('/v1/rrweb', { method: 'POST', keepalive: true, headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ session_id: sessionId, sent_at_ms: Date.now(), document_height_px: docHeight(), events }) })
        .then((r) => { state.sent += events.length; if (!r.ok) state.errors.push(r.status); });
    };
    state.flush = flush;
    setInterval(flush, 250);
    state.ready = true;
  } else if (tracker === 'posthog') {
    window.posthog.init('phc_demo_token', {
      api_host: origin, autocapture: true, capture_pageview: true, capture_pageleave: true,
      disable_session_recording: false, advanced_disable_flags: false, persistence: 'memory',
      request_batching: true, loaded: () => { state.ready = true; },
    });
  }
})();
