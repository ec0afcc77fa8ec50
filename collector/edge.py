"""What the browser needs for edge scoring (SDK option ``edge: true``), served by the collector.

``register(app)`` adds:

``GET /v1/models/{name}/current``
    The latest version of model ``name`` (``models/<name>/<version>/``, :class:`udfs.scoring.ModelRegistry`)
    as JSON: ``name``, ``version``, ``model_version``, ``sha256`` (of the ONNX bytes), ``features`` (input
    feature names in column order), ``input_name``, ``output_name``, ``created_at``, ``bytes`` and
    ``model_base64`` (the ONNX file itself, base64: one request brings model and manifest, and the
    model is small: 6 inputs, under 1 KB). The sha256 is checked against the manifest before serving.
    ``ETag`` = the model's sha256 and manifest digest; ``Cache-Control: no-cache`` (the browser keeps
    it but revalidates each load, so a new version is used at once and an unchanged one costs a 304).
    ``400`` for a malformed name, ``404`` for an unknown model, ``503`` when the files on disk are
    broken (sha256 mismatch, malformed manifest).

``GET /v1/rules``
    The ruleset in force, as the job sees it: the newest record on the ``rules`` topic when it
    validates, else the job's initial file (``rules/default.v1.json``). Looked up at most every
    ``rules_refresh_s``; while the topic cannot be read the last ruleset found is served (header
    ``X-Intentflow-Rules-Source``: ``topic``, ``file`` or ``stale``); a due lookup runs in the
    background, so only a process's first request waits for it. ``ETag`` = digest of the JSON;
    ``Cache-Control: no-cache``. ``503`` when not even the file is readable.

``GET /v1/edge/ort/{file}``
    The onnxruntime-web files the browser loads (the ES module ``ort.wasm.min.mjs``, its loader
    ``ort-wasm-simd-threaded.mjs`` and the wasm binary), from the npm package installed in
    ``web/node_modules`` (``npm ci`` in ``web/``): never from a CDN. Only those names (else ``404``);
    ``.wasm`` as ``application/wasm``; gzip when the client accepts it (compressed once, kept in
    memory); ``ETag`` + ``Cache-Control: no-cache``. ``503`` when the package is not installed.

Cross-origin pages (SDK on another origin than the collector) get ``Access-Control-Allow-Origin`` for
the origins the collector allows (``CollectorSettings.cors_origins``).

Configuration: :func:`edge_settings` (environment: ``INTENTFLOW_MODELS_DIR``, ``INTENTFLOW_KAFKA_BOOTSTRAP``,
``INTENTFLOW_TOPIC_PREFIX`` through :func:`udfs.config.stack_settings`).
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from udfs.settings import DEFAULT_RULES_REFRESH_S as SETTINGS_RULES_REFRESH_S
from udfs.settings import EdgeSettings, load_settings

log = logging.getLogger("intentflow.collector.edge")

ROOT = Path(__file__).resolve().parents[1]

#: The onnxruntime-web files the browser needs for the wasm backend, name -> content type.
ORT_FILES: dict[str, str] = {
    "ort.wasm.min.mjs": "text/javascript",
    "ort-wasm-simd-threaded.mjs": "text/javascript",
    "ort-wasm-simd-threaded.wasm": "application/wasm",
}

#: Model names: lower-case letters, digits, '-' and '_', at most 64 characters (the folder names under models/).
MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: How often the rules topic is looked at, s (``udfs.settings.DEFAULT_RULES_REFRESH_S``).
DEFAULT_RULES_REFRESH_S = SETTINGS_RULES_REFRESH_S

#: gzip level of the runtime files (zlib's default, 6: the 14 MB wasm compresses to about a quarter
#: in well under a second, once per process).
GZIP_LEVEL = 6

_STATE_KEY = web.AppKey("intentflow_edge_state", object)


def edge_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> EdgeSettings:
    """The ``edge`` section of :func:`udfs.settings.load_settings` (the stack's Kafka and rules topic,
    ``INTENTFLOW_MODELS_DIR``, ``INTENTFLOW_RULES_FILE``), then ``overrides``.

    Raises:
        udfs.settings.SettingsError: any invalid setting of the environment (the whole tree is validated).
        ValueError: an override out of range.
    """
    section = load_settings(env).edge
    return replace(section, **overrides) if overrides else section


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers=headers)


def _error(status: int, error: str, detail: str) -> web.Response:
    return _json_response({"error": error, "detail": detail}, status=status, headers={"Cache-Control": "no-store"})


def _etag_matches(request: web.Request, etag: str) -> bool:
    given = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*") for tag in given.split(",")) if given else False


def _cached(request: web.Request, body: bytes, etag: str, content_type: str,
            extra: dict[str, str] | None = None) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache", **(extra or {})}
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, headers=headers)


# ---- model ----------------------------------------------------------------------------------------


def model_body(manifest_path: Path) -> dict[str, Any]:
    """The JSON of ``GET /v1/models/{name}/current`` for one version folder's manifest.

    Raises:
        FileNotFoundError: manifest or ONNX file missing.
        udfs.scoring.ModelError: malformed manifest, or the ONNX bytes do not match its sha256.
    """
    from udfs.model_manifest import ModelError, ModelManifest

    manifest = ModelManifest.load(manifest_path)
    blob = (manifest.directory / manifest.file).read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != manifest.sha256:
        raise ModelError(f"{manifest.directory / manifest.file}: sha256 {actual} does not match manifest {manifest.sha256}")
    return {
        "name": manifest.name,
        "version": manifest.version,
        "model_version": manifest.model_version,
        "sha256": manifest.sha256,
        "features": list(manifest.features),
        "input_name": manifest.input_name,
        "output_name": manifest.output_name,
        "created_at": manifest.raw.get("created_at"),
        "bytes": len(blob),
        "model_base64": base64.b64encode(blob).decode("ascii"),
    }


@dataclass
class _ModelEntry:
    signature: tuple
    body: bytes
    etag: str
    model_version: str


@dataclass
class _RulesEntry:
    body: bytes
    etag: str
    rules_version: str
    source: str
    checked_at: float


@dataclass
class _EdgeState:
    settings: EdgeSettings
    models: dict[str, _ModelEntry] = field(default_factory=dict)
    rules: _RulesEntry | None = None
    rules_lock: asyncio.Lock | None = None
    rules_task: asyncio.Task | None = None
    ort_cache: dict[tuple[str, bool], tuple[tuple, bytes, str]] = field(default_factory=dict)


def _signature(manifest_path: Path) -> tuple:
    files = [manifest_path, *sorted(manifest_path.parent.glob("*.onnx"))]
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


async def handle_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{name}/current`` (see the module docstring)."""
    from udfs.scoring import ModelError, ModelRegistry

    state: _EdgeState = request.app[_STATE_KEY]
    name = request.match_info["name"]
    if not MODEL_NAME_PATTERN.match(name):
        return _error(400, "bad_model_name", "model names are 1-64 characters of a-z, 0-9, '-', '_'")
    try:
        path = ModelRegistry(state.settings.models_root).manifest_path(name)
        signature = _signature(path)
    except FileNotFoundError:
        return _error(404, "unknown_model", f"no versions of model {name!r}")
    entry = state.models.get(name)
    if entry is None or entry.signature != signature:
        try:
            body = model_body(path)
        except (ModelError, FileNotFoundError, ValueError) as exc:
            log.warning("model %s not served: %s", name, exc)
            return _error(503, "model_unavailable", str(exc)[:300])
        raw = json.dumps(body, separators=(",", ":")).encode()
        etag = '"' + body["sha256"][:32] + "-" + hashlib.sha256(raw).hexdigest()[:16] + '"'
        entry = state.models[name] = _ModelEntry(signature, raw, etag, body["model_version"])
    return _cached(request, entry.body, entry.etag, "application/json",
                   {"X-Intentflow-Model-Version": entry.model_version})


# ---- rules ----------------------------------------------------------------------------------------


def _rules_entry(ruleset: dict[str, Any], source: str) -> _RulesEntry:
    raw = json.dumps(ruleset, separators=(",", ":")).encode()
    return _RulesEntry(raw, '"' + hashlib.sha256(raw).hexdigest()[:32] + '"', ruleset["rules_version"], source,
                       time.monotonic())


def _lookup_rules(settings: EdgeSettings, previous: _RulesEntry | None) -> _RulesEntry:
    """The ruleset in force now (blocking: reads the topic). See the module docstring."""
    from udfs.rules import RulesetError, load_ruleset

    if settings.kafka_bootstrap and settings.rules_topic:
        try:
            from connectors.rules_topic import latest_ruleset_record

            record = latest_ruleset_record(settings.kafka_bootstrap, settings.rules_topic, timeout_s=2.0)
        except Exception as exc:  # noqa: BLE001 - any broker trouble: keep serving what we had
            log.warning("rules topic %s not readable: %s", settings.rules_topic, exc)
            if previous is not None:
                return _RulesEntry(previous.body, previous.etag, previous.rules_version, "stale", time.monotonic())
            record = None
        if record is not None:
            try:
                return _rules_entry(load_ruleset(bytes(record[0])), "topic")
            except RulesetError as exc:
                log.warning("newest ruleset on %s is invalid (the job keeps its previous one): %s",
                            settings.rules_topic, exc)
                if previous is not None:
                    return _RulesEntry(previous.body, previous.etag, previous.rules_version, previous.source,
                                       time.monotonic())
    return _rules_entry(load_ruleset(Path(settings.rules_file)), "file")


async def _refresh_rules(state: _EdgeState) -> _RulesEntry:
    """Look the ruleset up once (one lookup at a time) and store it."""
    if state.rules_lock is None:
        state.rules_lock = asyncio.Lock()
    async with state.rules_lock:
        entry = state.rules
        if entry is None or time.monotonic() - entry.checked_at >= state.settings.rules_refresh_s:
            entry = await asyncio.get_running_loop().run_in_executor(None, _lookup_rules, state.settings, entry)
            state.rules = entry
        return entry


async def handle_rules(request: web.Request) -> web.Response:
    """``GET /v1/rules`` (see the module docstring). Only the first request waits for the lookup (at
    most about 4 s when the broker is down); later ones get the current entry at once while a due
    refresh runs in the background."""
    from udfs.rules import RulesetError

    state: _EdgeState = request.app[_STATE_KEY]
    entry = state.rules
    if entry is None:
        try:
            entry = await _refresh_rules(state)
        except (RulesetError, OSError) as exc:
            log.warning("no ruleset to serve: %s", exc)
            return _error(503, "rules_unavailable", str(exc)[:300])
    elif time.monotonic() - entry.checked_at >= state.settings.rules_refresh_s and (
            state.rules_task is None or state.rules_task.done()):
        state.rules_task = asyncio.get_running_loop().create_task(_refresh_rules(state))
        state.rules_task.add_done_callback(lambda t: t.cancelled() or t.exception() and log.warning(
            "rules refresh failed: %s", t.exception()))
    return _cached(request, entry.body, entry.etag, "application/json",
                   {"X-Intentflow-Rules-Source": entry.source, "X-Intentflow-Rules-Version": entry.rules_version})


# ---- onnxruntime-web ------------------------------------------------------------------------------


def _ort_payload(path: Path, compress: bool) -> tuple[bytes, str]:
    raw = path.read_bytes()
    body = gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0) if compress else raw
    return body, '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


async def handle_ort(request: web.Request) -> web.Response:
    """``GET /v1/edge/ort/{file}`` (see the module docstring)."""
    state: _EdgeState = request.app[_STATE_KEY]
    name = request.match_info["file"]
    content_type = ORT_FILES.get(name)
    if content_type is None:
        return _error(404, "unknown_file", f"served: {', '.join(sorted(ORT_FILES))}")
    path = state.settings.ort_dir / name
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _error(503, "runtime_not_installed", "onnxruntime-web is not installed: run `npm ci` in web/")
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    key = (name, gz)
    signature = (stat.st_mtime_ns, stat.st_size)
    cached = state.ort_cache.get(key)
    if cached is None or cached[0] != signature:
        body, etag = await asyncio.get_running_loop().run_in_executor(None, _ort_payload, path, gz)
        cached = state.ort_cache[key] = (signature, body, etag)
    _sig, body, etag = cached
    headers = {"Vary": "Accept-Encoding"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    return _cached(request, body, etag, content_type, headers)


# ---- mounting -------------------------------------------------------------------------------------


def _cors(allowed: tuple[str, ...]):
    @web.middleware
    async def middleware(request: web.Request, handler):
        resp = await handler(request)
        origin = request.headers.get("Origin")
        if origin and request.path.startswith(("/v1/models/", "/v1/rules", "/v1/edge/", "/sdk/")) and (
                "*" in allowed or origin in allowed):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Expose-Headers"] = "ETag, X-Intentflow-Model-Version, X-Intentflow-Rules-Version"
            resp.headers["Vary"] = ", ".join(filter(None, [resp.headers.get("Vary"), "Origin"]))
        return resp

    return middleware


def register(app: web.Application, settings: EdgeSettings | None = None) -> None:
    """Add the edge routes (module docstring) to ``app`` (before it starts).

    ``settings`` defaults to :func:`edge_settings`; allowed origins default to the collector's
    ``cors_origins`` when ``app`` is the collector's application.
    """
    settings = settings or edge_settings()
    allowed = settings.cors_origins
    if allowed is None:
        from collector.app import SETTINGS_KEY

        collector = app.get(SETTINGS_KEY)
        allowed = tuple(collector.cors_origins) if collector is not None else ()
    app[_STATE_KEY] = _EdgeState(settings)
    app.middlewares.append(_cors(allowed))
    app.router.add_get("/v1/models/{name}/current", handle_model)
    app.router.add_get("/v1/rules", handle_rules)
    app.router.add_get("/v1/edge/ort/{file}", handle_ort)
