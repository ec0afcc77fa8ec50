"""Experiments in the stream: arm assignment, propensities, and exposure/conversion counting facts.

Pure Python (no PyFlink); the job's decider (udfs/decide.py) calls it per event, the tests call it
directly. Design and semantics: docs/experiments.md.

**Assignment.** A ruleset may carry one ``experiment`` (schemas/rules.v1.json): ``{"id",
"holdout_pct", "attribution_window_ms", "bucket_ms"}``. A visitor is in the ``holdout`` arm when
``unit(experiment id, anonymous id) * 100 < holdout_pct``, else in ``personalized``
(:func:`arm_for`). ``unit`` is the first 8 bytes of SHA-256 of ``"<experiment id>|<anonymous id>"`` as
a fraction of 2**64: deterministic (the job, a replay, the browser and an offline analysis agree), the
same for every session of a returning visitor, and independent of the CRC-32 that assigns the
threshold variants of adaptive rules (:func:`udfs.rules.variant_for`) — CRC-32 is affine over GF(2),
so two CRC-32 hashes of ``"<a>|x"`` and ``"<b>|x"`` differ by a constant and would correlate the
arm with the variant. Hashing unit id and experiment salt with SHA-256 is what e.g. Statsig does
(docs.statsig.com, "How Evaluation Works").

**Propensity** of an action = P(arm) x P(variant | rule): ``holdout_pct/100`` or ``1 - holdout_pct/100``
times ``1 - explore_pct/100`` (control) or ``explore_pct/200`` (lower/higher) for a rule with an
adaptive threshold, 1 otherwise. A holdout session's action is the *shadow* action: decided and
logged (``arm == "holdout"``), never served.

**Counting facts.** Each count is a set of sessions: a :class:`Fact` ``(experiment_id, arm, metric,
bucket_start_ms, session_id)`` is emitted at most once per session, experiment and metric
(:class:`ExperimentSession` remembers which, in keyed state), and the Redis writer adds it with a
marker per ``(experiment, metric, session)`` (an HSETNX field of the session's Redis hash, expiring with
it), so a batch decided again after a restore never
counts twice (connectors/redis_store.py). Metrics (:data:`METRICS`), per experiment x arm x
event-time bucket of the event that completed the fact:

* ``sessions``: sessions with an event (not a duplicate, not late, not a bot) — the assignment count
  that the sample-ratio-mismatch check uses;
* ``triggered``: sessions for which the job decided an action (served, or shadow in the holdout);
* ``exposed``: sessions that sent an ``exposure`` event for this experiment (the page rendered the
  arm's treatment of a decided action: the personalized content, or the default layout in the holdout);
* ``converted`` / ``carted``: exposed sessions with a ``purchase`` / ``add_to_cart`` whose event time is
  within ``[first exposure, first exposure + attribution_window_ms]``;
* ``sessions_converted``: sessions with a ``purchase`` at all (intention-to-treat).

Adaptive-threshold experiments (``"<rule id>@<rule version>"``, arms = variants ``control``/
``lower``/``higher``) count ``sessions`` and ``sessions_converted`` of personalized sessions only
(what :func:`udfs.rules.adapt` compares: sessions *assigned* to a variant, not those the threshold let
through).
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from udfs.assignment import VARIANTS, variant_for

__all__ = [
    "ARMS",
    "DEFAULT_ATTRIBUTION_WINDOW_MS",
    "DEFAULT_BUCKET_MS",
    "ExperimentConfig",
    "ExperimentSession",
    "Fact",
    "HOLDOUT",
    "METRICS",
    "PERSONALIZED",
    "annotate_action",
    "arm_for",
    "arm_propensity",
    "assignment_unit",
    "experiment_config",
    "fold_facts",
    "observe_event",
    "variant_propensity",
]

HOLDOUT = "holdout"
PERSONALIZED = "personalized"
#: Arms of the personalization experiment.
ARMS: tuple[str, str] = (HOLDOUT, PERSONALIZED)

#: Metrics counted per experiment x arm x bucket (see the module docstring).
METRICS: tuple[str, ...] = ("sessions", "triggered", "exposed", "converted", "carted", "sessions_converted")

#: 30 min: the inactivity rule that ends a web session (Google Analytics' default session timeout), so
#: a conversion is attributed within the visit that saw the treatment. Our choice; docs/experiments.md.
DEFAULT_ATTRIBUTION_WINDOW_MS = 1_800_000
#: One minute per bucket: fine enough for a lift-over-time plot of a run of tens of minutes. Our choice.
DEFAULT_BUCKET_MS = 60_000

#: Conversion event times remembered per session, to attribute a purchase that arrives before its
#: exposure event (bounded state; a session with more purchases than this is rare). Our choice.
MAX_REMEMBERED_CONVERSIONS = 16

_VARIANT_CONTROL = "control"
#: Event types that can complete a fact after a session's first event.
_CONVERSION_TYPES = frozenset({"exposure", "purchase", "add_to_cart"})


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """The ``experiment`` block of a ruleset (schemas/rules.v1.json), defaults filled in."""

    id: str
    holdout_pct: float
    attribution_window_ms: int = DEFAULT_ATTRIBUTION_WINDOW_MS
    bucket_ms: int = DEFAULT_BUCKET_MS


def experiment_config(ruleset: Mapping[str, Any]) -> ExperimentConfig | None:
    """The :class:`ExperimentConfig` of a validated ruleset, or None when it has no ``experiment``."""
    block = ruleset.get("experiment")
    if not block:
        return None
    return ExperimentConfig(
        id=str(block["id"]), holdout_pct=float(block["holdout_pct"]),
        attribution_window_ms=int(block.get("attribution_window_ms", DEFAULT_ATTRIBUTION_WINDOW_MS)),
        bucket_ms=int(block.get("bucket_ms", DEFAULT_BUCKET_MS)))


def assignment_unit(experiment_id: str, anonymous_id: str) -> float:
    """Uniform number in [0, 1) for a visitor in an experiment: the first 8 bytes of
    SHA-256(``"<experiment id>|<anonymous id>"``), big-endian, divided by 2**64."""
    digest = hashlib.sha256(f"{experiment_id}|{anonymous_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 18446744073709551616.0


def arm_for(experiment_id: str, anonymous_id: str | None, holdout_pct: float) -> str:
    """``"holdout"`` when ``assignment_unit * 100 < holdout_pct``, else ``"personalized"``.
    A missing anonymous id is personalized (cannot be kept in the holdout on its next visit)."""
    if not holdout_pct or not anonymous_id:
        return PERSONALIZED
    return HOLDOUT if assignment_unit(experiment_id, anonymous_id) * 100.0 < holdout_pct else PERSONALIZED


def arm_propensity(arm: str, holdout_pct: float) -> float:
    """P(arm) under the configured split. Raises ValueError for an unknown arm."""
    if arm == HOLDOUT:
        return holdout_pct / 100.0
    if arm == PERSONALIZED:
        return 1.0 - holdout_pct / 100.0
    raise ValueError(f"unknown arm {arm!r} (known: {', '.join(ARMS)})")


def variant_propensity(variant: str | None, explore_pct: float) -> float:
    """P(threshold variant) of an adaptive rule (:func:`udfs.rules.variant_for`): control
    ``1 - explore_pct/100``, lower and higher ``explore_pct/200`` each; 1.0 for a rule without variants
    (``variant`` None). Raises ValueError for an unknown variant."""
    if variant is None:
        return 1.0
    if variant == _VARIANT_CONTROL:
        return 1.0 - explore_pct / 100.0
    if variant in ("lower", "higher"):
        return explore_pct / 200.0
    raise ValueError(f"unknown variant {variant!r}")


class Fact(NamedTuple):
    """One session counted once in one metric: ``HINCRBY {p}exp:{experiment_id}
    "{arm}|{metric}|{bucket_start_ms}" 1``, guarded by a marker field per (experiment, metric) in the session's Redis hash."""

    experiment_id: str
    arm: str
    metric: str
    bucket_start_ms: int
    session_id: str


class ExperimentSession:
    """What one session remembers for counting (kept in its keyed-state ``SessionEntry``, pickled).

    Attributes:
        arms: ``{experiment id: arm or variant}`` as assigned to this session.
        done: ``{experiment id: frozenset of metrics already emitted}``.
        exposed_ts_ms: ``{experiment id: earliest exposure event time seen}``.
        purchase_ts_ms, cart_ts_ms: tuples of the event times of the session's purchases / add-to-carts (at
            most :data:`MAX_REMEMBERED_CONVERSIONS`, the earliest kept).

    No container is allocated per session until used (issue 19: 1,682 B of a session's Python copy, mostly
    empty dicts and lists, sets and per-session copies of the same strings; bench/session_size.py,
    2026-12-04): empty mappings are one shared read-only mapping, empty time lists the empty tuple, the
    sets of metrics shared frozensets, and on restore the experiment ids, arm names and ``steady`` are
    shared with every other session (they come from the ruleset). Read the attributes; change them only
    through this module. The pickle is the 6-tuple ``(arms, done, exposed_ts_ms, purchase_ts_ms,
    cart_ts_ms, steady)`` of dicts, sets and lists it has always been.
    """

    __slots__ = ("arms", "done", "exposed_ts_ms", "purchase_ts_ms", "cart_ts_ms", "steady")

    def __init__(self) -> None:
        self.arms: Mapping[str, str] = _NOTHING
        self.done: Mapping[str, frozenset[str]] = _NOTHING
        self.exposed_ts_ms: Mapping[str, int] = _NOTHING
        self.purchase_ts_ms: tuple[int, ...] = ()
        self.cart_ts_ms: tuple[int, ...] = ()
        #: ``(experiment id, adaptive experiments)`` this session was counted in as ``sessions`` already:
        #: an event of another type than exposure/purchase/add_to_cart then has nothing to count (fast path)
        self.steady: tuple | None = None

    def __getstate__(self):
        return ({**self.arms}, {k: set(v) for k, v in self.done.items()}, {**self.exposed_ts_ms},
                list(self.purchase_ts_ms), list(self.cart_ts_ms), self.steady)

    def __setstate__(self, st) -> None:
        arms, done, exposed, purchase, cart = st[:5]
        self.arms = {sys.intern(k): sys.intern(v) for k, v in arms.items()} if arms else _NOTHING
        self.done = {sys.intern(k): _metric_set(v) for k, v in done.items()} if done else _NOTHING
        self.exposed_ts_ms = exposed or _NOTHING
        self.purchase_ts_ms = tuple(purchase)
        self.cart_ts_ms = tuple(cart)
        self.steady = _shared_steady(st[5]) if len(st) > 5 else None

    def arm(self, config: ExperimentConfig, anonymous_id: str | None) -> str:
        """This session's arm in ``config`` (assigned on first use, then remembered)."""
        arm = self.arms.get(config.id)
        if arm is None:
            arm = self._assign(config.id, arm_for(config.id, anonymous_id, config.holdout_pct))
        return arm

    def _assign(self, experiment_id: str, arm: str) -> str:
        if self.arms is _NOTHING:
            self.arms = {}
        self.arms[experiment_id] = arm
        return arm

    def _emit(self, out: list[Fact], experiment_id: str, arm: str, metric: str, ts_ms: int, bucket_ms: int,
              session_id: str) -> None:
        done = self.done.get(experiment_id, _NO_METRICS)
        if metric in done:
            return
        if self.done is _NOTHING:
            self.done = {}
        self.done[experiment_id] = _metric_set(done | {metric})
        out.append(Fact(experiment_id, arm, metric, ts_ms - ts_ms % bucket_ms, session_id))


#: The empty mapping every session without experiment data shares (read-only: a write is a bug).
_NOTHING: Mapping = MappingProxyType({})
_NO_METRICS: frozenset[str] = frozenset()
_METRICS_SET = frozenset(METRICS)
#: The sets of metrics sessions share: at most 2**len(METRICS) = 64 frozensets.
_METRIC_SETS: dict[frozenset[str], frozenset[str]] = {}
#: ``steady`` values sessions share after a restore; one per ruleset in force, cleared when
#: :data:`_MAX_SHARED_STEADY` (our bound: more rulesets than hot reloads in a state's life) are held.
_SHARED_STEADY: dict[tuple, tuple] = {}
_MAX_SHARED_STEADY = 16


def _metric_set(metrics) -> frozenset[str]:
    """``metrics`` as the frozenset every session with the same metrics shares (metrics not in
    :data:`METRICS` are not shared)."""
    metrics = frozenset(metrics)
    if metrics <= _METRICS_SET:
        return _METRIC_SETS.setdefault(metrics, metrics)
    return metrics


def _shared_steady(steady: tuple | None) -> tuple | None:
    """``steady`` as the equal tuple other sessions hold."""
    if steady is None:
        return None
    if len(_SHARED_STEADY) >= _MAX_SHARED_STEADY and steady not in _SHARED_STEADY:
        _SHARED_STEADY.clear()
    return _SHARED_STEADY.setdefault(steady, steady)


def _is_bot(event: Mapping[str, Any]) -> bool:
    context = event.get("context") or {}
    return bool(context.get("is_bot")) or context.get("device_class") == "bot"


def _remembered(times: tuple[int, ...], ts_ms: int) -> tuple[int, ...]:
    return times + (ts_ms,) if len(times) < MAX_REMEMBERED_CONVERSIONS else times


def _first_within(times: tuple[int, ...], start_ms: int, window_ms: int) -> int | None:
    inside = [t for t in times if start_ms <= t <= start_ms + window_ms]
    return min(inside) if inside else None


def observe_event(state: ExperimentSession, event: Mapping[str, Any], config: ExperimentConfig | None,
                  adaptive: tuple[tuple[str, str, float], ...], out: list[Fact]) -> None:
    """Count one event of a session: append the :class:`Fact` s it completes to ``out``.

    Call it for every event of the session that is not a duplicate and not late, in arrival order
    (the job: after dedup and the lateness check). Bot events (``context.is_bot`` or device class
    ``bot``) count nothing.

    Args:
        state: the session's :class:`ExperimentSession` (updated).
        event: the canonical event (docs/contracts.md §1): ``session_id``, ``anonymous_id``, ``type``,
            ``ts_ms``, and for an ``exposure`` ``props.experiment_id``.
        config: the ruleset's experiment, or None (then only adaptive experiments count; every session
            is personalized).
        adaptive: ``(experiment id "<rule id>@<version>", rule id, explore_pct)`` of the ruleset's
            adaptive thresholds (``RuleEngine.adaptive_experiments``).
        out: where facts go.
    """
    event_type = event["type"]
    steady = (config.id if config is not None else None, adaptive)
    if event_type not in _CONVERSION_TYPES and state.steady == steady:
        return  # counted in every experiment's sessions already; nothing else to count for this type
    if _is_bot(event):
        return
    session_id = event["session_id"]
    ts_ms = int(event["ts_ms"])
    arm = PERSONALIZED
    if config is not None:
        bucket_ms = config.bucket_ms
        arm = state.arm(config, event.get("anonymous_id"))
        state._emit(out, config.id, arm, "sessions", ts_ms, bucket_ms, session_id)
        if event_type == "exposure":
            props = event.get("props") or {}
            if props.get("experiment_id") == config.id:
                first = state.exposed_ts_ms.get(config.id)
                if first is None or ts_ms < first:
                    if state.exposed_ts_ms is _NOTHING:
                        state.exposed_ts_ms = {}
                    state.exposed_ts_ms[config.id] = first = ts_ms
                state._emit(out, config.id, arm, "exposed", ts_ms, bucket_ms, session_id)
        elif event_type == "purchase":
            state.purchase_ts_ms = _remembered(state.purchase_ts_ms, ts_ms)
            state._emit(out, config.id, arm, "sessions_converted", ts_ms, bucket_ms, session_id)
        elif event_type == "add_to_cart":
            state.cart_ts_ms = _remembered(state.cart_ts_ms, ts_ms)
        if event_type in ("exposure", "purchase", "add_to_cart"):
            exposed_ms = state.exposed_ts_ms.get(config.id)
            if exposed_ms is not None:
                done = state.done.get(config.id, ())
                for metric, times in (("converted", state.purchase_ts_ms), ("carted", state.cart_ts_ms)):
                    if metric not in done:
                        at_ms = _first_within(times, exposed_ms, config.attribution_window_ms)
                        if at_ms is not None:
                            state._emit(out, config.id, arm, metric, at_ms, bucket_ms, session_id)
    if arm == PERSONALIZED and adaptive:
        bucket_ms = config.bucket_ms if config is not None else DEFAULT_BUCKET_MS
        for experiment_id, rule_id, explore_pct in adaptive:
            variant = state.arms.get(experiment_id)
            if variant is None:
                unit = event.get("anonymous_id") or session_id  # as the rule engine assigns it
                variant = state._assign(experiment_id, VARIANTS[variant_for(rule_id, unit, explore_pct)])
            state._emit(out, experiment_id, variant, "sessions", ts_ms, bucket_ms, session_id)
            if event_type == "purchase":
                state._emit(out, experiment_id, variant, "sessions_converted", ts_ms, bucket_ms, session_id)
    if state.steady != steady:
        state.steady = _shared_steady(steady)


def annotate_action(action: dict[str, Any], state: ExperimentSession, event: Mapping[str, Any],
                    config: ExperimentConfig | None, explore_pct: float, out: list[Fact]) -> None:
    """Add ``experiment_id``, ``arm``, ``variant`` and ``propensity`` to an action (docs/contracts.md §4)
    and count the session as ``triggered``.

    Args:
        action: the action dict of ``Decision.to_action`` (changed in place); ``params.variant`` is the
            threshold variant when the rule is adaptive.
        state, event, config: as :func:`observe_event`.
        explore_pct: the deciding rule's ``explore_pct`` (0 when it has no adaptive threshold).
        out: where the ``triggered`` fact goes.
    """
    variant = (action.get("params") or {}).get("variant") if explore_pct else None
    propensity = variant_propensity(variant, explore_pct)
    if config is None:
        action["experiment_id"] = None
        action["arm"] = PERSONALIZED
    else:
        arm = state.arm(config, event.get("anonymous_id"))
        action["experiment_id"] = config.id
        action["arm"] = arm
        propensity *= arm_propensity(arm, config.holdout_pct)
        if not _is_bot(event):
            ts_ms = int(event["ts_ms"])
            state._emit(out, config.id, arm, "triggered", ts_ms, config.bucket_ms, event["session_id"])
    action["variant"] = variant
    action["propensity"] = round(propensity, 9)


def fold_facts(facts, counts: dict[str, dict[str, int]] | None = None,
               seen: set[tuple[str, str, str]] | None = None) -> dict[str, dict[str, int]]:
    """Add facts to counts the way the Redis writer does (connectors/redis_store.py), in memory.

    Args:
        facts: :class:`Fact` s (or equal tuples).
        counts: ``{experiment id: {"<arm>|<metric>|<bucket_start_ms>": sessions}}`` to add to (a new dict
            when None); the shape of the Redis hashes ``{p}exp:{experiment id}``.
        seen: the markers ``(experiment id, metric, session id)`` already counted (a new set when None).
    Returns:
        ``counts``.
    """
    counts = {} if counts is None else counts
    seen = set() if seen is None else seen
    for experiment_id, arm, metric, bucket_start_ms, session_id in facts:
        marker = (experiment_id, metric, session_id)
        if marker in seen:
            continue
        seen.add(marker)
        fields = counts.setdefault(experiment_id, {})
        field = f"{arm}|{metric}|{bucket_start_ms}"
        fields[field] = fields.get(field, 0) + 1
    return counts
