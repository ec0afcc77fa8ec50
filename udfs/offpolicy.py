"""Off-policy evaluation of a candidate ruleset from logged decisions (``intentflow backtest --candidate``).

Pure numpy (no Kafka, no PyFlink). The unit is the **session**; its *treatment* is the first action the
job served it (``"<rule id>:<action>"``) or :data:`NO_ACTION` (holdout sessions, and sessions no rule
fired for); its *outcome* is 1 when the session has a ``purchase`` (the experiments' intention-to-treat
metric ``sessions_converted``, docs/experiments.md).

**Logging propensity** of a session's logged treatment (the probability that the logging policy, the
ruleset in force with its experiment split and threshold variants, gave this treatment to this session):

* a served action: the action's own ``propensity`` field (P(arm) x P(variant), udfs/experiments.py);
* :data:`NO_ACTION` in the holdout: P(holdout) + P(personalized) x 1{the personalized arm would have
  served nothing}; the shadow decision tells which, so: P(holdout) when the shadow decided an action,
  1 when it did not;
* :data:`NO_ACTION` outside any experiment, or with no action decided at all: 1.

**Estimators** of the candidate's conversion rate V = E[Y | treatment = candidate's choice], with
w_i = 1{candidate's treatment of session i = logged treatment} / propensity_i:

* IPS (inverse propensity scoring; Horvitz & Thompson 1952, "A generalization of sampling without
  replacement from a finite universe", JASA 47): V_IPS = (1/n) sum w_i y_i; unbiased when every
  propensity is > 0 where the candidate acts;
* SNIPS (self-normalized IPS; Swaminathan & Joachims 2015, "The self-normalized estimator for
  counterfactual learning", NeurIPS): V_SNIPS = sum w_i y_i / sum w_i; biased but of lower variance,
  and always within [0, 1].

Confidence intervals: the percentile bootstrap over sessions (Efron & Tibshirani 1993, "An Introduction
to the Bootstrap", ch. 13), ``n_boot`` resamples with a fixed seed, so a report is reproducible.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Treatment of a session that was served nothing.
NO_ACTION = "-"


def treatment_of(action: Mapping[str, Any] | None) -> str:
    """``"<rule id>:<action>"`` of an action dict (docs/contracts.md §4), :data:`NO_ACTION` for None."""
    return NO_ACTION if action is None else f"{action['rule_id']}:{action['action']}"


@dataclass(frozen=True)
class LoggedSession:
    """One session as the logging policy treated it.

    Attributes:
        session_id: the session.
        treatment: what it was served (:func:`treatment_of`; :data:`NO_ACTION` in the holdout).
        propensity: P(logging policy gives ``treatment`` | session), in (0, 1].
        converted: 1 when the session has a purchase, else 0.
        candidate: what the candidate ruleset would serve it (:func:`treatment_of`).
    """

    session_id: str
    treatment: str
    propensity: float
    converted: int
    candidate: str


def logged_session(session_id: str, first_action: Mapping[str, Any] | None, holdout_share: float | None,
                   converted: bool, candidate_action: Mapping[str, Any] | None) -> LoggedSession:
    """Build a :class:`LoggedSession` from the first action the logging ruleset decided for the session
    (served, or shadow when its ``arm`` is ``holdout``) and the candidate's first action.

    Args:
        holdout_share: the experiment's holdout share in [0, 1] (``holdout_pct / 100``), None without one.

    Raises:
        ValueError: a propensity outside (0, 1].
    """
    if first_action is None:
        treatment, propensity = NO_ACTION, 1.0
    elif first_action.get("arm") == "holdout":
        treatment, propensity = NO_ACTION, float(holdout_share if holdout_share is not None else 1.0)
    else:
        treatment, propensity = treatment_of(first_action), float(first_action.get("propensity", 1.0))
    if not 0.0 < propensity <= 1.0:
        raise ValueError(f"session {session_id}: propensity {propensity} outside (0, 1]")
    return LoggedSession(session_id, treatment, propensity, int(bool(converted)), treatment_of(candidate_action))


def _weights(sessions: list[LoggedSession]) -> tuple[np.ndarray, np.ndarray]:
    w = np.array([(1.0 / s.propensity) if s.candidate == s.treatment else 0.0 for s in sessions], dtype=np.float64)
    y = np.array([s.converted for s in sessions], dtype=np.float64)
    return w, y


def _ips(w: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(w * y)) if len(w) else float("nan")


def _snips(w: np.ndarray, y: np.ndarray) -> float:
    total = float(np.sum(w))
    return float(np.sum(w * y) / total) if total > 0 else float("nan")


def estimate(sessions: Iterable[LoggedSession], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """IPS and SNIPS estimates of the candidate's conversion rate, with percentile-bootstrap intervals.

    Returns:
        ``{"sessions", "matched" (sessions whose logged treatment is the candidate's),
        "effective_sample_size" ((sum w)^2 / sum w^2), "logged_conversion_rate",
        "ips": {"estimate", "ci_low", "ci_high"}, "snips": {...}, "level", "n_boot", "seed"}``;
        estimates are NaN where undefined (no session, or no match for SNIPS).
    """
    sessions = list(sessions)
    w, y = _weights(sessions)
    n = len(sessions)
    out: dict[str, Any] = {"sessions": n, "matched": int(np.count_nonzero(w)), "level": level, "n_boot": n_boot,
                           "seed": seed,
                           "effective_sample_size": (float(np.sum(w) ** 2 / np.sum(w * w)) if np.any(w) else 0.0),
                           "logged_conversion_rate": float(np.mean(y)) if n else float("nan")}
    rng = np.random.default_rng(seed)
    boot = {"ips": [], "snips": []}
    for _ in range(n_boot if n else 0):  # one resample at a time: n_boot x n indices would not fit
        i = rng.integers(0, n, size=n)
        boot["ips"].append(_ips(w[i], y[i]))
        boot["snips"].append(_snips(w[i], y[i]))
    alpha = (1.0 - level) / 2.0
    for name, fn in (("ips", _ips), ("snips", _snips)):
        point = fn(w, y)
        boots = np.array(boot[name], dtype=np.float64)
        boots = boots[~np.isnan(boots)]
        low, high = ((float(np.quantile(boots, alpha)), float(np.quantile(boots, 1.0 - alpha))) if len(boots)
                     else (float("nan"), float("nan")))
        out[name] = {"estimate": point, "ci_low": low, "ci_high": high}
    return out


def decision_differences(current: Mapping[str, Mapping[str, Any]], candidate: Mapping[str, Mapping[str, Any]]
                         ) -> dict[str, Any]:
    """Compare two rulesets' decisions over the same events.

    Args:
        current, candidate: ``{event_id: action dict}`` of each ruleset (events without an action absent).

    Returns:
        ``{"events_with_a_decision", "differ", "same", "by_rule": {rule id: {"current", "candidate",
        "differ"}}}``: a decision differs when only one ruleset acted on the event or their
        ``rule_id``/``action`` differ; ``by_rule`` counts each rule's actions under either ruleset and
        the differing events it was part of.
    """
    by_rule: dict[str, Counter] = {}
    differ = same = 0
    for event_id in sorted(set(current) | set(candidate)):
        a, b = current.get(event_id), candidate.get(event_id)
        for side, action in (("current", a), ("candidate", b)):
            if action is not None:
                by_rule.setdefault(action["rule_id"], Counter())[side] += 1
        if treatment_of(a) == treatment_of(b):
            same += 1
            continue
        differ += 1
        for rule_id in {x["rule_id"] for x in (a, b) if x is not None}:
            by_rule[rule_id]["differ"] += 1
    return {"events_with_a_decision": differ + same, "differ": differ, "same": same,
            "by_rule": {r: {k: int(c[k]) for k in ("current", "candidate", "differ")} for r, c in sorted(by_rule.items())}}
