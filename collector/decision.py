"""Decision API and static web files, mounted on the collector's aiohttp application.

``register(app)`` adds:

``GET /v1/decision?session_id=...``
    The latest action for the session, read from the Redis hash ``{prefix}action:{session_id}``
    (docs/contracts.md §5; the personalization job writes it, with TTL 1800 s). Always answers 200
    with JSON, and ``source`` says where the answer came from:

    - ``"redis"``: the stored action (fields of docs/contracts.md §4, numbers as numbers, ``params``
      decoded from its JSON string);
    - ``"none"``: no action stored for the session: ``{"action": "default", ...}``;
    - ``"holdout"``: the stored action is a *shadow* action of a session in the experiment's holdout arm
      (``arm == "holdout"``, docs/experiments.md): the default layout, with ``experiment_id``, ``arm``,
      ``event_ts_ms``, ``decided_at_ms`` and ``rules_version`` (so the page logs an ``exposure`` of the
      default), never the shadow action itself;
    - ``"redis_unavailable"``: Redis did not answer within ``redis_timeout_s``: the same safe
      default, so a page never waits on, or breaks because of, the decision path.

    A missing or over-long ``session_id`` (more than ``udfs.limits.ID_MAX_CHARS``, the limit the
    collector and the job apply) is answered 400 with ``{"error": ...}``.
    ``served_at_ms`` (server epoch ms) and ``lookup_ms`` (time spent in Redis, ms) come with every
    answer; ``Cache-Control: no-store``.

``GET /v1/experiments[?experiment_id=...][&holdout_pct=...]``
    The report of every experiment with counts (``udfs.experiment_stats.experiment_report``, as
    ``intentflow experiments report --json``): per arm sessions, exposures, conversions and rate; lift
    with its 95 % CI, the mSPRT's always-valid p-value and confidence sequence, the SRM check
    (docs/experiments.md). The split comes from ``holdout_pct`` or the ruleset file
    (``INTENTFLOW_RULES_FILE``, default rules/default.v1.json); an experiment whose split is unknown is
    listed with its counts and ``report: null``. ``503`` when Redis does not answer; ``400`` for a bad
    ``holdout_pct``. Simulated experiments carry ``simulation: true``.

``GET /sdk/...``  the capture SDK (``web/sdk/``: ``intentflow.js``, ``intentflow.iife.js``).
``GET /demo/``    the demo product page (``web/demo/``); ``/demo`` and ``/`` redirect there.

Configuration (environment, read by :func:`decision_settings`):
    INTENTFLOW_REDIS_URL           Redis URL, default from ``udfs.config.stack_settings()``
    INTENTFLOW_REDIS_PREFIX        key prefix, default ``if:`` (key = prefix + ``action:`` + session id)
    INTENTFLOW_DECISION_TIMEOUT_S  Redis connect/read timeout in s, default 0.05
    INTENTFLOW_WEB_ROOT            folder served as ``/sdk`` and ``/demo``, default ``web/`` of the checkout
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web

from collector import metrics as service_metrics
from connectors.redis_store import RedisKeys, decode_action
from udfs.limits import ID_MAX_CHARS
from udfs.settings import CHECKOUT, DEFAULT_DECISION_TIMEOUT_S, load_settings
from udfs.settings import DecisionSettings as BaseDecisionSettings


#: Redis connect and read timeout, s (``udfs.settings.DEFAULT_DECISION_TIMEOUT_S``). 50 ms: a Redis on
#: loopback answers a HGETALL in well under 1 ms (bench/decision_bench.py), so 50 ms is only reached when
#: it is down or stalled, and the page (which polls every few hundred ms) gets the safe default quickly.
DEFAULT_TIMEOUT_S = DEFAULT_DECISION_TIMEOUT_S

#: Longest accepted session id, characters: the contract's limit (``udfs.limits.ID_MAX_CHARS``), so
#: every session the collector and the job accept can be asked for.
MAX_SESSION_ID_CHARS = ID_MAX_CHARS

#: Action returned when there is no decision: render the page as designed.
DEFAULT_ACTION = "default"


#: Arm whose actions are shadow actions: decided and logged, never served (udfs.experiments.HOLDOUT).
HOLDOUT_ARM = "holdout"
#: Fields of a holdout session's stored action that the page may see.
_HOLDOUT_FIELDS = ("experiment_id", "arm", "event_ts_ms", "decided_at_ms", "rules_version")

#: The web folder of this checkout (``INTENTFLOW_WEB_ROOT`` overrides it: ``udfs.settings``).
WEB_ROOT = CHECKOUT / "web"

_REDIS_KEY = web.AppKey("intentflow_decision_redis", object)
_SETTINGS_KEY = web.AppKey("intentflow_decision_settings", object)


@dataclass(frozen=True)
class DecisionSettings(BaseDecisionSettings):
    """:class:`udfs.settings.DecisionSettings` (the tree's ``decision`` section) with the Redis key of an
    action (the key schema is ``connectors.redis_store``'s, which udfs may not import)."""

    def action_key(self, session_id: str) -> str:
        """Redis key of the latest action of ``session_id``."""
        return RedisKeys(self.redis_prefix).action(session_id)


def decision_settings(env: Mapping[str, str] | None = None) -> DecisionSettings:
    """The ``decision`` section of :func:`udfs.settings.load_settings` (``INTENTFLOW_REDIS_URL`` and Redis
    credentials, ``INTENTFLOW_REDIS_PREFIX``, ``INTENTFLOW_DECISION_TIMEOUT_S``, ``INTENTFLOW_WEB_ROOT``,
    ``INTENTFLOW_RULES_FILE``).

    Raises:
        udfs.settings.SettingsError: any invalid setting of the environment (the whole tree is validated).
    """
    section = load_settings(env).decision
    return DecisionSettings(**{f.name: getattr(section, f.name) for f in fields(section)})


def _default(session_id: str, source: str) -> dict[str, Any]:
    return {"session_id": session_id, "action": DEFAULT_ACTION, "params": {}, "source": source}


async def handle_decision(request: web.Request) -> web.Response:
    """``GET /v1/decision?session_id=...``; see the module docstring for the answers."""
    session_id = request.query.get("session_id", "")
    if not session_id or len(session_id) > MAX_SESSION_ID_CHARS:
        return web.json_response(
            {"error": f"session_id is required, at most {MAX_SESSION_ID_CHARS} characters"},
            status=400, headers={"Cache-Control": "no-store"})
    settings: DecisionSettings = request.app[_SETTINGS_KEY]
    client = request.app[_REDIS_KEY]
    metrics = request.app[service_metrics.METRICS_KEY]
    t0 = time.perf_counter()
    try:
        fields = await client.hgetall(settings.action_key(session_id))
    except Exception:  # noqa: BLE001 - any Redis failure means "serve the safe default"
        outcome = "error"
        body = _default(session_id, "redis_unavailable")
    else:
        if fields and fields.get("arm") == HOLDOUT_ARM:
            outcome = "hit"
            stored = decode_action(fields)
            body = _default(session_id, "holdout")
            body.update({name: stored[name] for name in _HOLDOUT_FIELDS if name in stored})
        elif fields and fields.get("action"):
            outcome = "hit"
            body = decode_action(fields)
            body["session_id"] = session_id
            body["source"] = "redis"
        else:
            outcome = "miss"
            body = _default(session_id, "none")
    lookup_s = time.perf_counter() - t0
    metrics.redis_read_duration_s.labels(outcome).observe(lookup_s)
    metrics.decision_answers.labels(body["source"]).inc()
    body["lookup_ms"] = round(lookup_s * 1000, 3)
    body["served_at_ms"] = int(time.time() * 1000)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


#: Longest wait for Redis when reading experiment counts, s (a report reads a few small hashes).
EXPERIMENTS_TIMEOUT_S = 2.0


async def handle_experiments(request: web.Request) -> web.Response:
    """``GET /v1/experiments``; see the module docstring."""
    import asyncio  # noqa: PLC0415

    from udfs.experiment_stats import experiment_design, experiment_report, is_simulation  # noqa: PLC0415
    from udfs.rules import RulesetError, load_ruleset  # noqa: PLC0415

    headers = {"Cache-Control": "no-store"}
    holdout_pct = None
    if "holdout_pct" in request.query:
        try:
            holdout_pct = float(request.query["holdout_pct"])
        except ValueError:
            holdout_pct = -1.0
        if not 0 <= holdout_pct <= 100:
            return web.json_response({"error": "holdout_pct must be a number within 0..100"}, status=400, headers=headers)
    try:
        ruleset = load_ruleset(request.app[_SETTINGS_KEY].rules_file)
    except RulesetError:
        ruleset = None
    wanted = request.query.get("experiment_id")
    if wanted is not None and (not wanted or len(wanted) > ID_MAX_CHARS):
        return web.json_response({"error": f"experiment_id must have 1..{ID_MAX_CHARS} characters"}, status=400,
                                 headers=headers)
    settings: DecisionSettings = request.app[_SETTINGS_KEY]
    client = request.app[_REDIS_KEY]
    keys = RedisKeys(settings.redis_prefix)

    async def read() -> dict[str, dict[str, str]]:
        ids = [wanted] if wanted else sorted(await client.smembers(keys.experiments))
        return {eid: await client.hgetall(keys.experiment(eid)) for eid in ids}

    try:
        counts = await asyncio.wait_for(read(), EXPERIMENTS_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - Redis down or slow: say so
        return web.json_response({"error": "redis_unavailable"}, status=503, headers=headers)
    out = {}
    for eid, fields in counts.items():
        entry: dict[str, Any] = {"simulation": is_simulation(eid), "counts": fields, "report": None}
        try:
            shares, control, numerator, denominator = experiment_design(eid, ruleset, holdout_pct)
            entry["report"] = experiment_report(fields, shares, control, numerator=numerator, denominator=denominator)
        except ValueError as exc:  # DesignUnknown, or counts that are not ours
            entry["error"] = str(exc)
        out[eid] = entry
    return web.json_response({"experiments": _finite(out)}, headers=headers)


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


async def _redirect_demo(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo/")


def register(app: web.Application, settings: DecisionSettings | None = None) -> None:
    """Add the decision route and the static web files to ``app``.

    The Redis client (``redis.asyncio``, one connection pool per app) is opened on startup and
    closed on cleanup. The app's metrics (:func:`collector.metrics.install`, ``GET /metrics``) count the
    Redis read time and the answers by source. ``settings`` defaults to :func:`decision_settings` (environment).
    Raises ``FileNotFoundError`` when the web root lacks ``sdk/`` or ``demo/``.
    """
    settings = settings or decision_settings()
    service_metrics.install(app)
    sdk_dir = settings.web_root / "sdk"
    demo_dir = settings.web_root / "demo"
    for folder in (sdk_dir, demo_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"web folder missing: {folder}")
    app[_SETTINGS_KEY] = settings

    async def redis_ctx(app_: web.Application):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            settings.redis_url, decode_responses=True,
            socket_timeout=settings.timeout_s, socket_connect_timeout=settings.timeout_s,
            retry_on_timeout=False, health_check_interval=0)
        app_[_REDIS_KEY] = client
        yield
        await client.aclose()

    app.cleanup_ctx.append(redis_ctx)
    index = demo_dir / "index.html"

    async def demo_index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/v1/decision", handle_decision)
    app.router.add_get("/v1/experiments", handle_experiments)
    app.router.add_get("/demo/", demo_index)
    app.router.add_get("/demo", _redirect_demo)
    if not any(getattr(r, "canonical", None) == "/" for r in app.router.resources()):
        app.router.add_get("/", _redirect_demo)
    app.router.add_static("/sdk/", sdk_dir, append_version=False)
    app.router.add_static("/demo/", demo_dir, append_version=False)
