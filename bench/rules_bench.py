"""Microseconds per rule evaluation with the default ruleset (rules/default.v1.json).

Run:  .venv/bin/python bench/rules_bench.py [--events 20000] [--repeats 5]

Inputs: a seeded random mix of feature dicts (scroll 0-100 %, hovers 0-4000 ms, session age 0-60 s,
compare clicks 0-1), intent scores 0-1 and events of 5000 sessions, so every rule (including the adaptive
one, which hashes the session id) is reached. ``last_fired`` is kept per session as the job would.
Prints the best-of-``repeats`` mean µs per call for: ``evaluate`` (dict), ``evaluate_vector`` (list and
numpy float32 array) and, as the baseline the compilation is meant to beat, a plain recursive
interpreter of the same condition trees (written here, not part of the engine).
"""
from __future__ import annotations

import argparse
import operator
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from udfs.rules import RuleEngine, _variant_values, variant_for  # noqa: E402

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
        "!=": operator.ne}


def make_inputs(engine: RuleEngine, n_events: int, seed: int = 1):
    rng = random.Random(seed)
    rows = []
    for i in range(n_events):
        features = {name: 0.0 for name in engine.feature_order}
        features.update(max_scroll_depth_pct=rng.uniform(0, 100), hover_ms_product_card=rng.choice([0.0, 800.0, 2500.0]),
                        hover_ms_spec=rng.choice([0.0, 3000.0]), session_age_s=rng.uniform(0, 60),
                        compare_click_count=float(rng.random() < 0.2))
        session_id = f"s-{rng.randrange(5000)}"
        event = {"type": rng.choice(["scroll", "hover", "click"]), "session_id": session_id,
                 "ts_ms": 1_764_460_800_000 + i * 50,
                 "page": {"item_id": rng.choice([None, "sku-1", "sku-2"])}, "props": {"element_role": "spec"}}
        rows.append((features, rng.random(), event))
    return rows


def interpret(node, f, s, e, rule_id):
    """Baseline: walk the condition tree per event."""
    if "all" in node:
        return all(interpret(c, f, s, e, rule_id) for c in node["all"])
    if "any" in node:
        return any(interpret(c, f, s, e, rule_id) for c in node["any"])
    if "not" in node:
        return not interpret(node["not"], f, s, e, rule_id)
    if "feature" in node or "intent_score" in node:
        cmp = node if "feature" in node else node["intent_score"]
        left = f[node["feature"]] if "feature" in node else s
        value = cmp["value"]
        if "adaptive" in cmp and cmp["adaptive"].get("explore_pct"):
            value = _variant_values(cmp)[variant_for(rule_id, e.get("session_id"), cmp["adaptive"]["explore_pct"])]
        return _OPS[cmp["op"]](left, value)
    if "event_type" in node:
        return e.get("type") == node["event_type"]
    if "event_element_role" in node:
        return (e.get("props") or {}).get("element_role") == node["event_element_role"]
    if "event_has" in node:
        where, _, key = node["event_has"].rpartition(".")
        return ((e.get(where) or {}) if where else e).get(key) is not None
    raise ValueError(node)


def timed(fn, rows, repeats: int) -> tuple[float, int]:
    best = float("inf")
    fired = 0
    for _ in range(repeats):
        last_fired: dict[str, dict[str, int]] = {}
        fired = 0
        start = time.perf_counter_ns()
        for features, score, event in rows:
            state = last_fired.setdefault(event["session_id"], {})
            decision = fn(features, score, event, state)
            if decision is not None:
                state[decision.rule_id if hasattr(decision, "rule_id") else decision] = event["ts_ms"]
                fired += 1
        best = min(best, (time.perf_counter_ns() - start) / 1000 / len(rows))
    return best, fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    engine = RuleEngine.default()
    rows = make_inputs(engine, args.events)
    as_list = [([f[n] for n in engine.feature_order], s, e) for f, s, e in rows]
    as_array = [(np.array(f, dtype=np.float32), s, e) for f, s, e in as_list]
    rules = sorted((r for r in engine.ruleset["rules"] if r["enabled"]), key=lambda r: (-r["priority"], r["id"]))

    def interpreted(f, s, e, last_fired):
        for rule in rules:
            if interpret(rule["when"], f, s, e, rule["id"]):
                last = last_fired.get(rule["id"])
                if last is not None and e["ts_ms"] - last < rule["cooldown_ms"]:
                    return None
                return rule["id"]
        return None

    results = [
        ("evaluate (dict)", *timed(engine.evaluate, rows, args.repeats)),
        ("evaluate_vector (list)", *timed(engine.evaluate_vector, as_list, args.repeats)),
        ("evaluate_vector (numpy float32)", *timed(engine.evaluate_vector, as_array, args.repeats)),
        ("baseline: tree-walking interpreter", *timed(interpreted, rows, args.repeats)),
    ]
    print(f"rules_version {engine.rules_version}, {len(rules)} rules, {args.events} events, "
          f"best of {args.repeats}, Python {sys.version.split()[0]}")
    for name, us, fired in results:
        print(f"  {name:36s} {us:6.2f} µs/event   ({fired} actions)")


if __name__ == "__main__":
    main()
