"""SIMULATION building blocks (udfs/simulation.py): seeded visitors, the response model, and that every
simulated visitor is decided by the default rules (so every visitor can be exposed)."""
from __future__ import annotations

import pytest

from udfs.config import JobConfig
from udfs.contract import make_event
from udfs.decide import Decider, decide_all
from udfs.rules import RuleEngine
from udfs.scoring import ReloadingScorer
from udfs.simulation import CONVERSION_PROBABILITY, conversion_probability, true_lift, visitor_plan

T0 = 1_764_000_000_000


def test_visitors_are_seeded_and_both_kinds_occur():
    plans = [visitor_plan(3, i, "run") for i in range(200)]
    assert plans == [visitor_plan(3, i, "run") for i in range(200)]
    assert plans != [visitor_plan(4, i, "run") for i in range(200)]
    kinds = {p.kind for p in plans}
    assert kinds == {"deep", "shallow"}
    assert len({p.anonymous_id for p in plans}) == 200 and all(0 <= p.u < 1 for p in plans)


def test_response_model_has_one_built_in_lift():
    assert true_lift() == pytest.approx(0.06)
    assert conversion_probability("default") == 0.10
    with pytest.raises(KeyError):
        conversion_probability("unknown_layout")
    with pytest.raises(ValueError):
        true_lift({**CONVERSION_PROBABILITY, "simplify_layout": 0.5})


def test_every_simulated_visitor_triggers_a_rule_that_the_response_model_knows():
    events = []
    for i in range(40):
        plan = visitor_plan(1, i, "run")
        events += [make_event(kind, session_id=plan.session_id, anonymous_id=plan.anonymous_id,
                              client_ts_ms=T0 + 100_000 * i + dt, seq=n, source_key=f"{plan.session_id}:{n}",
                              context={"device_class": "desktop"}, page={"item_id": "laptop-pro-14"}, props=props)
                   for n, (kind, dt, props) in enumerate(plan.timeline)]
    actions, _, _ = decide_all(Decider(JobConfig(), ReloadingScorer(), RuleEngine.default()), events, 64)
    assert {a["session_id"] for a in actions} == {visitor_plan(1, i, "run").session_id for i in range(40)}
    assert {a["action"] for a in actions} <= set(CONVERSION_PROBABILITY)
