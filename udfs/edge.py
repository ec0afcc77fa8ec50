"""Edge scoring, server side: the Python reference the browser must match, and the check of what it sent.

The SDK's edge module (``web/sdk/edge.js``, option ``edge: true``) computes the session features, the
intent score and the rule decision in the browser for a provisional action. This module holds:

* :func:`reference_replay`: the server's computation for one session, event by event, exactly as
  :class:`udfs.decide.Decider` runs it (``SessionState.apply`` -> ``IntentScorer.score`` -> ``RuleEngine``
  with per-session cool-down state); the golden output the JS port is compared with
  (``tests/unit/test_edge_parity.py``, ``tests/browser/test_edge_browser.py``).
* :func:`feature_hash`: FNV-1a 32-bit of a float32 feature vector, the same as ``edge.js featureHash``.
* :func:`check_intent`: compares an ``intent`` event (the browser's advisory score and decision) with
  the server's own, for counting disagreements per model version;
* :func:`audit_intents`: those counts over recorded events (a backtest of the browsers' claims; the
  job counts them live: ``udfs.decide.Decider``, docs/edge.md).

Trust model (docs/edge.md): nothing the browser claims is used to decide. The job treats ``intent``
events as non-behavioral (``SessionState`` ignores them: they change no feature, score or action), so
a forged score cannot trigger a server action or enter training data; :func:`check_intent` is for
monitoring only.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from udfs.features import FEATURE_DTYPE
from udfs.session import STATUS_APPLIED, SessionState, event_order_key

#: FNV-1a 32-bit parameters (Fowler/Noll/Vo; IETF draft-eastlake-fnv): offset basis and prime.
FNV1A32_OFFSET = 0x811C9DC5
FNV1A32_PRIME = 0x01000193

#: Largest |browser score - server score| counted as agreement. 1e-5: onnxruntime-web (wasm) and
#: onnxruntime (CPU) evaluate the same float32 graph; float32 has a relative precision of 6e-8, and the
#: measured difference on the parity fixtures is below 1e-7, so 1e-5 leaves two orders of magnitude for
#: kernel differences (the issue's tolerance) while any real feature difference moves the score far more.
SCORE_TOLERANCE = 1e-5


def feature_hash(vector: np.ndarray | Iterable[float]) -> str:
    """``"fnv1a32:<8 hex digits>"`` of the vector's float32 little-endian bytes (shape ``(N_FEATURES,)``).

    Same as ``featureHash`` in ``web/sdk/edge.js``; identifies a feature vector, not a security measure.
    """
    data = np.asarray(vector, dtype="<f4").tobytes()
    h = FNV1A32_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV1A32_PRIME) & 0xFFFFFFFF
    return f"fnv1a32:{h:08x}"


def reference_replay(events: Iterable[Mapping[str, Any]], scorer, engine, *, visit_count: int = 1,
                     sort: bool = True) -> list[dict[str, Any]]:
    """The server's computation for ONE session, event by event (the golden output of the parity tests).

    Args:
        events: the session's contract events.
        scorer: an :class:`udfs.scoring.IntentScorer` (``score``: ``float32[N, N_FEATURES]`` -> ``float32[N]``).
        engine: a :class:`udfs.rules.RuleEngine`.
        visit_count: passed to :class:`udfs.session.SessionState`.
        sort: apply in :func:`udfs.session.event_order_key` order (as the job does); False keeps the given order.

    Returns:
        One dict per event in applied order: ``event_id``, ``status``, ``reason`` (the Outcome),
        ``features`` (list of float32 values after the event), and for applied events
        ``intent_score`` (the float32 score as a float), ``decision`` (``Decision.as_dict()`` plus
        ``event_ts_ms``, or None) and ``rule_reason`` (``fired``/``no_match``/``cooldown:<id>``).

    Raises:
        ValueError: the events belong to more than one session.
    """
    ordered = sorted(events, key=event_order_key) if sort else list(events)
    state = SessionState(visit_count=visit_count)
    last_fired: dict[str, int] = {}
    out = []
    for event in ordered:
        outcome = state.apply(dict(event))
        vector = state.features()
        row: dict[str, Any] = {"event_id": event.get("event_id"), "status": outcome.status,
                               "reason": outcome.reason, "features": vector.tolist()}
        if outcome.status == STATUS_APPLIED:
            score = float(scorer.score(vector.reshape(1, -1))[0])
            decision, reason = engine.evaluate_vector_with_reason(vector, score, event, last_fired)
            if decision is not None:
                last_fired[decision.rule_id] = decision.event_ts_ms
            row.update(intent_score=score, rule_reason=reason,
                       decision=None if decision is None else {**decision.as_dict(), "event_ts_ms": decision.event_ts_ms})
        out.append(row)
    return out


@dataclass(frozen=True, slots=True)
class IntentCheck:
    """How an ``intent`` event's claims compare with the server's own computation.

    Attributes:
        model_version: the version the browser says it used.
        score_diff: |browser score - server score| (NaN when the browser sent no finite score).
        same_features: the browser's ``feature_hash`` equals the hash of the server's vector.
        same_rule: the browser's local rule id equals the server's (None = no action on both sides).
        disagrees: score difference above ``SCORE_TOLERANCE``, or a different rule.
    """

    model_version: str
    score_diff: float
    same_features: bool
    same_rule: bool
    disagrees: bool


def check_intent(intent_props: Mapping[str, Any], server_vector: np.ndarray, server_score: float,
                 server_rule_id: str | None, *, tolerance: float = SCORE_TOLERANCE) -> IntentCheck:
    """Compare an ``intent`` event's props with the server's features, score and rule for the same event.

    Args:
        intent_props: ``props`` of the ``intent`` event (``intent_score``, ``model_version``,
            ``feature_hash``, ``rule_id``), as the browser sent them: untrusted.
        server_vector: the server's feature vector after the triggering event, ``float32[N_FEATURES]``.
        server_score: the server's intent score for it.
        server_rule_id: the rule the server fired for that event, or None.
        tolerance: largest score difference that counts as agreement.

    Returns:
        :class:`IntentCheck` (for counters only; never an input of a decision).
    """
    claimed = intent_props.get("intent_score")
    try:
        claimed = float(claimed)
    except (TypeError, ValueError):
        claimed = math.nan
    diff = abs(claimed - float(server_score)) if math.isfinite(claimed) else math.nan
    same_features = intent_props.get("feature_hash") == feature_hash(np.asarray(server_vector, dtype=FEATURE_DTYPE))
    same_rule = (intent_props.get("rule_id") or None) == (server_rule_id or None)
    disagrees = not (diff <= tolerance) or not same_rule
    return IntentCheck(str(intent_props.get("model_version") or ""), diff, same_features, same_rule, disagrees)


def audit_intents(events: Iterable[Mapping[str, Any]], scorer, engine) -> dict[str, dict[str, Any]]:
    """Count, per claimed model version, how the ``intent`` events among ``events`` compare with the
    server's own computation on the same events (:func:`reference_replay` per session, :func:`check_intent`).

    Args:
        events: contract events of any number of sessions (behavioral signals and ``intent`` events).
        scorer: an :class:`udfs.scoring.IntentScorer`.
        engine: a :class:`udfs.rules.RuleEngine`.

    Returns:
        ``{model_version: {"intent": n, "disagree": n, "feature_mismatch": n, "rule_mismatch": n,
        "unknown_trigger": n, "score_diff_max": float}}``; ``unknown_trigger`` counts intent events
        whose ``trigger_event_id`` is not an applied event of their session (forged or lost), and
        they count as disagreeing.
    """
    by_session: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_session.setdefault(event["session_id"], []).append(event)
    out: dict[str, dict[str, Any]] = {}
    for session_events in by_session.values():
        rows = {r["event_id"]: r for r in reference_replay(session_events, scorer, engine)}
        for event in session_events:
            if event.get("type") != "intent":
                continue
            props = event.get("props") or {}
            counts = out.setdefault(str(props.get("model_version") or ""), {
                "intent": 0, "disagree": 0, "feature_mismatch": 0, "rule_mismatch": 0, "unknown_trigger": 0,
                "score_diff_max": 0.0})
            counts["intent"] += 1
            row = rows.get(props.get("trigger_event_id"))
            if row is None or row["status"] != STATUS_APPLIED:
                counts["unknown_trigger"] += 1
                counts["disagree"] += 1
                continue
            rule_id = row["decision"]["rule_id"] if row["decision"] else None
            check = check_intent(props, np.asarray(row["features"], dtype=FEATURE_DTYPE), row["intent_score"], rule_id)
            counts["disagree"] += check.disagrees
            counts["feature_mismatch"] += not check.same_features
            counts["rule_mismatch"] += not check.same_rule
            if math.isfinite(check.score_diff):
                counts["score_diff_max"] = max(counts["score_diff_max"], check.score_diff)
            else:
                counts["score_diff_max"] = math.inf
    return out

