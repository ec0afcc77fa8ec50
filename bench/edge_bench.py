"""Edge scoring in headless Chromium (issue 12): signal -> provisional action on the page, versus the server path.

Everything runs on this machine: Debian's Chromium (headless, driven by tests/browser/driver.mjs), the
real collector (``collector.app.create_app``: events to Kafka, plus the decision API and the edge
endpoints of collector/edge.py), Kafka and Redis of the local stack, and as the server's decider the
plain-Python baseline (``bench/baseline.py``: the same udfs/ code as the Flink job, micro-batches of
20 ms; the Flink job itself is being rewritten on another branch). The demo page runs with ``?edge=1``.

Figures:

* **load**: what the browser downloads for edge scoring on a cold profile (Resource Timing: bytes on
  the wire and decoded, per file: onnxruntime-web module, its wasm loader and binary, the model JSON,
  the ruleset, the feature spec, edge.js) and how long loading took (fetches, onnxruntime session
  creation, total; ``tracker.edgeLoad``).
* **edge, signal -> provisional action**: ``--tries`` real Compare clicks on one page. Before each, the
  engine's session state is reset and fed (directly, nothing sent) a page view, a 80 % scroll and
  1,900 ms of product-card hover; the real click closes the hover segment of the pointer resting on the
  card, which brings the card's hover above the article's 2 s and fires ``deep_engagement_product``.
  Measured from the click's ``event.timeStamp`` to the moment the demo page has rendered the action
  (``applied_at_perf_ms``), both on the page's ``performance.now()`` clock.
* **server, same signal -> the server's action on the page**: ``--server-tries`` fresh sessions of the
  article visitor (scroll 75 %, 2.2 s on the product card, Compare); for each, the same click's time to
  the edge action and to the server's action (collector -> Kafka -> baseline -> Redis -> decision API,
  polled every 20 ms) on the page.
* **per call** in the page: ``SessionFeatures.apply``, ``EdgeScorer.score`` (one onnxruntime-web run),
  ``RuleEvaluator.evaluate``, over ``--calls`` calls.

Target (issue 12): local decision <= 30 ms p99 after the model is loaded, i.e. >= 60 % below the server path.

Run: ``.venv/bin/python bench/edge_bench.py [--tries 100] [--server-tries 10] [--calls 2000]``; prints the
figures and writes ``bench/results/edge_bench.json``. Needs the local stack (``intentflow stack up``),
Chromium and ``npm ci`` in web/.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from connectors.redis_store import RedisKeys  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "edge_bench.json"
TARGET_P99_MS = 30.0
VISITOR_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")

#: Installed in the page after each load: the time stamps of real clicks (page performance clock, ms).
CLICK_PROBE = ("window.__clickTs = []; document.addEventListener('click', (e) => window.__clickTs.push(e.timeStamp),"
               " true); true")

#: Reset the edge engine's session and feed it the article visitor's signals up to just below the hover
#: threshold (nothing is sent: the events go to the engine only). Resolves when they are processed.
PRIME = """(async () => {
  const t = window.intentflowDemo.tracker;
  const m = await import('/sdk/edge.js');
  t.edge.features = new m.SessionFeatures(t.edge.spec);
  t.edge.lastFired = {};
  const sid = t.sessionId;
  const now = Math.round(performance.timeOrigin + performance.now());
  const base = { session_id: sid, page: { item_id: 'laptop-aurora-14' }, context: t.context() };
  const evs = [
    { ...base, event_id: 'p0', type: 'page_view', ts_ms: now - 3, props: {} },
    { ...base, event_id: 'p1', type: 'scroll', ts_ms: now - 2, props: { scroll_depth_pct: 80 } },
    { ...base, event_id: 'p2', type: 'hover', ts_ms: now - 1,
      props: { element_id: 'product-card-aurora-14', element_role: 'product_card', hover_ms: 1900 } },
  ];
  for (const e of evs) await t.edge.onEvent(e);
  t._newestTsMs = Math.max(t._newestTsMs || 0, now);
  window.intentflowDemo.applied.length = 0;
  return t.edge.features.featureDict().hover_ms_product_card;
})()"""

#: Per-call timings inside the page (µs), on the loaded engine.
PER_CALL = """(async (calls) => {
  const t = window.intentflowDemo.tracker;
  const m = await import('/sdk/edge.js');
  const feats = new m.SessionFeatures(t.edge.spec);
  const base = { session_id: 'bench', page: { item_id: 'x' }, context: t.context() };
  const now = Date.now();
  const events = Array.from({ length: calls }, (_, i) => ({ ...base, event_id: 'b' + i, ts_ms: now + i * 10,
    type: ['scroll', 'hover', 'click', 'mouse_trajectory'][i % 4],
    props: { scroll_depth_pct: (i * 7) % 100, hover_ms: 150 + i % 500, element_id: 'e' + (i % 9),
             element_role: 'product_card', straightness: 0.5, mean_speed_px_s: 300, sample_count: 10 } }));
  let t0 = performance.now();
  for (const e of events) feats.apply(e);
  const applyUs = (performance.now() - t0) * 1000 / calls;
  const v = feats.vector();
  const score = [];
  const tScore = performance.now();
  for (let i = 0; i < calls; i++) { const s0 = performance.now(); await t.edge.scorer.score(v); score.push((performance.now() - s0) * 1000); }
  const scoreUsMean = (performance.now() - tScore) * 1000 / calls;
  t0 = performance.now();
  for (let i = 0; i < calls; i++) t.edge.rules.evaluate(v, 0.3, events[i], {});
  const rulesUs = (performance.now() - t0) * 1000 / calls;
  score.sort((a, b) => a - b);
  return { features_apply_us_mean: applyUs, rules_evaluate_us_mean: rulesUs, score_us_mean: scoreUsMean,
           score_us_p99: score[Math.floor(calls * 0.99)], score_us_max: score[calls - 1],
           timer_resolution_note: 'performance.now() is coarsened (5 us or 100 us without cross-origin isolation)' };
})"""

LOAD_RESOURCES = """performance.getEntriesByType('resource')
  .filter((r) => /\\/v1\\/edge\\/ort\\/|\\/v1\\/models\\/|\\/v1\\/rules|edge-spec|\\/sdk\\/edge\\.js/.test(r.name))
  .map((r) => ({ url: new URL(r.name).pathname, transfer_bytes: r.transferSize, encoded_bytes: r.encodedBodySize,
                 decoded_bytes: r.decodedBodySize, duration_ms: Math.round(r.duration * 10) / 10 }))"""


def summarize(values: list[float]) -> dict:
    """n, p50, p95, p99, mean, max (ms, 2 decimals) of ``values``."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "mean_ms": round(float(a.mean()), 2),
            "max_ms": round(float(a.max()), 2)}


def _start_baseline(prefix: str, redis_prefix: str, stack, timeout_s: float = 60.0) -> subprocess.Popen:
    """The baseline decider on ``prefix`` topics; returns once it has decided a warm-up event."""
    import redis

    from tests.job_support import produce
    from udfs.contract import make_event

    env = {**os.environ, "INTENTFLOW_TOPIC_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.baseline", "--redis-prefix", redis_prefix], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    sid = f"warmup-{uuid.uuid4().hex[:8]}"
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"baseline exited: {proc.stderr.read()[-2000:]}")
            produce(stack.kafka_bootstrap, prefix + "signals.raw", [make_event(
                "page_view", session_id=sid, client_ts_ms=int(time.time() * 1000), source_key=f"{sid}:{time.time()}",
                props={"title": "warm-up"})])
            time.sleep(0.5)
            if client.exists(RedisKeys(redis_prefix).session(sid)):
                return proc
        raise RuntimeError("baseline did not decide its warm-up event in time")
    except BaseException:
        proc.kill()
        raise
    finally:
        client.close()


def _new_session(browser, base_url: str) -> None:
    """Leave the demo page (its pagehide writes the session back), then forget the session."""
    browser.call("goto", url=base_url + "/healthz")
    browser.eval("sessionStorage.clear(); true")


def _wait_edge(browser) -> None:
    browser.call("wait_for", timeout_ms=30000,
                 expr="window.intentflowDemo.tracker.edge !== null || !!window.intentflowDemo.tracker.edgeError")
    err = browser.eval("window.intentflowDemo.tracker.edgeError || null")
    if err:
        raise RuntimeError(f"edge did not load: {err}")


@click.command()
@click.option("--tries", default=100, show_default=True, help="edge: provisional actions measured on one page")
@click.option("--server-tries", default=10, show_default=True, help="fresh article-visitor sessions, edge vs server")
@click.option("--calls", default=2000, show_default=True, help="per-call timings in the page")
def main(tries: int, server_tries: int, calls: int) -> None:
    """Measure edge scoring in headless Chromium and write bench/results/edge_bench.json."""
    from aiohttp import web
    from kafka.admin import KafkaAdminClient

    from collector import edge
    from collector.app import collector_settings, create_app
    from collector.decision import DecisionSettings, register
    from intentflow.stack import create_topics
    from support import Browser, ServerThread, browser_missing_reason
    from udfs.config import Topics, stack_settings

    reason = browser_missing_reason()
    if reason:
        raise click.ClickException(reason)
    stack = stack_settings()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    redis_prefix = f"bench{uuid.uuid4().hex[:8]}:if:"
    create_topics(stack.kafka_bootstrap, prefix=prefix)
    topics = Topics.with_prefix(prefix)
    settings = collector_settings(kafka_bootstrap=stack.kafka_bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq,
                                  mount_decision=False, rate_limit_per_s=0, cors_origins=("*",))

    def make() -> web.Application:
        app = create_app(settings)
        register(app, DecisionSettings(redis_url=stack.redis_url, redis_prefix=redis_prefix))
        edge.register(app, edge.EdgeSettings(kafka_bootstrap=None, rules_topic=None))
        return app

    baseline = None
    out: dict = {"benchmark": "edge_scoring_browser", "target_p99_ms": TARGET_P99_MS,
                 "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        with ServerThread(make) as srv, Browser(user_agent=VISITOR_UA, as_visitor=True, timeout_s=120) as browser:
            url = srv.base_url + "/demo/?edge=1&poll_ms=20"
            # 1) cold load (fresh profile)
            browser.call("goto", url=url)
            _wait_edge(browser)
            resources = browser.eval(LOAD_RESOURCES)
            out["load"] = {"cold_profile": browser.eval("window.intentflowDemo.tracker.edgeLoad"),
                           "resources": resources,
                           "transfer_bytes_total": sum(r["transfer_bytes"] for r in resources),
                           "decoded_bytes_total": sum(r["decoded_bytes"] for r in resources)}
            # 2) edge only, many clicks on one page
            _new_session(browser, srv.base_url)
            browser.call("goto", url=url)
            _wait_edge(browser)
            browser.eval(CLICK_PROBE)
            browser.call("hover", selector="#product-card")
            latencies = []
            for _ in range(tries):
                primed = browser.eval(PRIME)
                assert primed == 1900, primed
                browser.call("sleep", ms=150)
                browser.call("click", selector="#compare")
                browser.call("wait_for", timeout_ms=5000, expr="window.intentflowDemo.applied.some((a) => a.source === 'edge')")
                applied = browser.eval("window.intentflowDemo.applied.find((a) => a.source === 'edge')")
                click_ts = browser.eval("window.__clickTs[window.__clickTs.length - 1]")
                assert applied["rule_id"] == "deep_engagement_product", applied
                latencies.append(applied["applied_at_perf_ms"] - click_ts)
            out["edge_signal_to_provisional_action"] = {**summarize(latencies),
                                                        "meets_target": bool(np.percentile(latencies, 99) <= TARGET_P99_MS),
                                                        "latencies_ms": [round(x, 2) for x in latencies]}
            # 3) server path vs edge, same click, fresh sessions (the baseline starts only now: the edge
            #    figures above are taken without its process on the machine)
            baseline = _start_baseline(prefix, redis_prefix, stack) if server_tries else None
            pairs = []
            for _ in range(server_tries):
                _new_session(browser, srv.base_url)
                browser.call("goto", url=url)
                _wait_edge(browser)
                browser.eval(CLICK_PROBE)
                browser.call("wheel_to_pct", pct=75)
                browser.call("hover", selector="#product-card")
                browser.call("sleep", ms=2200)
                browser.call("click", selector="#compare")
                try:
                    browser.call("wait_for", timeout_ms=15000, expr=(
                        "window.intentflowDemo.applied.some((a) => a.source === 'redis')"
                        " && window.intentflowDemo.applied.some((a) => a.source === 'edge')"))
                except AssertionError as exc:
                    state = browser.eval("({applied: window.intentflowDemo.applied, last: window.intentflowDemo.lastDecision,"
                                         " edge: window.intentflowDemo.tracker.lastEdgeResult, stats: window.intentflowDemo.tracker.stats})")
                    raise RuntimeError(f"no edge and server action for the article visitor: {json.dumps(state)[:3000]}") from exc
                applied = browser.eval("window.intentflowDemo.applied")
                click_ts = browser.eval("window.__clickTs[window.__clickTs.length - 1]")
                e = next(a for a in applied if a["source"] == "edge")
                s = next(a for a in applied if a["source"] == "redis")
                pairs.append({"edge_ms": e["applied_at_perf_ms"] - click_ts, "server_ms": s["applied_at_perf_ms"] - click_ts,
                              "edge_action": e["action"], "server_action": s["action"]})
            if pairs:
                edge_ms = [p["edge_ms"] for p in pairs]
                server_ms = [p["server_ms"] for p in pairs]
                out["edge_vs_server_same_click"] = {
                    "edge": summarize(edge_ms), "server": summarize(server_ms),
                    "same_action": all(p["edge_action"] == p["server_action"] for p in pairs),
                    "reduction_p50_pct": round(100 * (1 - np.median(edge_ms) / np.median(server_ms)), 1),
                    "server_path": "collector -> Kafka -> bench/baseline.py (udfs/ Decider, 20 ms micro-batches) -> Redis "
                                   "-> GET /v1/decision polled every 20 ms", "tries": pairs}
            # 4) per call
            out["per_call_in_page"] = browser.eval(f"({PER_CALL})({calls})")
            out["per_call_in_page"]["calls"] = calls
            errors = browser.call("page_errors")
            if errors:
                out["page_errors"] = errors
            browser.call("goto", url="about:blank")
    finally:
        if baseline is not None:
            baseline.send_signal(signal.SIGTERM)
            try:
                baseline.wait(15)
            except subprocess.TimeoutExpired:
                baseline.kill()
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        try:
            admin.delete_topics(list(topics.all()))
        except Exception:  # noqa: BLE001 - cleanup only
            pass
        finally:
            admin.close()

    # the machine is shared: other processes' load moves the tail figures, so each run says what it was
    out["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    load = out["load"]
    click.echo(f"edge load (cold profile): {load['transfer_bytes_total'] / 1e6:.2f} MB on the wire "
               f"({load['decoded_bytes_total'] / 1e6:.2f} MB decoded), "
               f"{load['cold_profile']['timings_ms']['total']:.0f} ms "
               f"(fetch {load['cold_profile']['timings_ms']['fetch']:.0f}, "
               f"session create {load['cold_profile']['timings_ms']['session_create']:.0f})")
    for r in load["resources"]:
        click.echo(f"  {r['url']:<45} {r['transfer_bytes']:>10} B on the wire {r['decoded_bytes']:>10} B decoded")
    e = out["edge_signal_to_provisional_action"]
    click.echo(f"edge signal -> provisional action, {e['n']} clicks: p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, "
               f"max {e['max_ms']} ms (target p99 <= {TARGET_P99_MS} ms: {'met' if e['meets_target'] else 'NOT met'})")
    if "edge_vs_server_same_click" in out:
        c = out["edge_vs_server_same_click"]
        click.echo(f"same click, {c['edge']['n']} sessions: edge p50 {c['edge']['p50_ms']} / p99 {c['edge']['p99_ms']} ms, "
                   f"server p50 {c['server']['p50_ms']} / p99 {c['server']['p99_ms']} ms "
                   f"({c['reduction_p50_pct']} % less at p50); same action: {c['same_action']}")
    p = out["per_call_in_page"]
    click.echo(f"per call in the page (means): features {p['features_apply_us_mean']:.2f} us, score (one onnxruntime-web run) "
               f"{p['score_us_mean']:.0f} us (p99 {p['score_us_p99']:.0f} us at the page timer's resolution), "
               f"rules {p['rules_evaluate_us_mean']:.2f} us")
    click.echo(f"load average (1 min) at start / end: {out['machine']['load_average_1min_at_start']} / "
               f"{out['machine']['load_average_1min_at_end']} on {out['machine']['cpus']} cpus")
    click.echo(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
