"""The rule engine: rules as data, compiled once, evaluated for every event.

A *ruleset* is a JSON document validated by ``schemas/rules.v1.json`` (shape in docs/contracts.md §4)::

    {"rules_version": "2026-11-30.1",
     "rules": [{"id": "deep_engagement_product", "version": 1, "description": "...", "priority": 20,
                "cooldown_ms": 60000, "enabled": true,
                "when": {"all": [{"feature": "max_scroll_depth_pct", "op": ">", "value": 70}, ...]},
                "action": {"name": "show_video_demo_and_price_comparison", "params": {}}}]}

Conditions are ``all``/``any``/``not`` over comparisons of a session feature (a name of
``udfs.features.FEATURES``) or of the intent score with a number, and tests of the triggering event
(``event_type``, ``event_element_role``, ``event_has``). Action params are literals or
``{"$event": "page.item_id"}`` (copied from the triggering event).

Semantics (the same live and in a replay, because only event time is used):

* The *winner* for an event is the matching enabled rule with the highest ``priority``; ties go to the
  smaller rule id. At most one action per event.
* Cool-down is per session and per rule, in event time: the winner fires only if
  ``event["ts_ms"] - last_fired[rule_id] >= cooldown_ms``. A winner still cooling down *suppresses* the
  event (no action): a lower-priority rule does not fire in its place, so the latest action of a session
  does not flap between rules. The caller keeps ``last_fired`` ({rule id: event time ms}) in keyed state and
  sets ``last_fired[d.rule_id] = d.event_ts_ms`` for every :class:`Decision` it emits. ``last_fired``
  survives ruleset reloads (keyed by rule id).
* Adaptive thresholds: one numeric threshold per rule may carry
  ``"adaptive": {"min", "max", "step", "explore_pct"}``. ``explore_pct`` % of sessions (chosen by a hash of
  rule id and the event's ``anonymous_id`` — the visitor, so a returning visitor keeps its variant — or its
  ``session_id`` when it has none, :func:`variant_for`) see ``value - step`` (variant ``lower``) or ``value + step``
  (``higher``), half each, clamped to [min, max]; the rest see ``value`` (``control``). Actions of such a
  rule carry ``params.experiment_id`` (``"<rule id>@<rule version>"``) and ``params.variant``.
  :func:`adapt` moves the threshold to a variant's value only when that variant's conversion rate beats
  control's in a two-proportion z-test (two-sided, Bonferroni over the two variants), then bumps the rule's
  version and the ruleset's version.

Performance: a ruleset is compiled once into one generated Python function that tests the rules in
priority order with plain comparisons (no per-event walking of the condition tree). The generated code is
built only from validated data: feature names from the known list, numbers via ``repr(float)``, strings via
``repr``.

Where it lives: the schema and loading in ``udfs/ruleset.py``, the compiled engine in
``udfs/rule_engine.py``, the adaptation in ``udfs/rule_adaptation.py``; this module is their public API
(import from here).
"""
from __future__ import annotations

from udfs.assignment import VARIANTS, variant_for
from udfs.rule_adaptation import ThresholdMove, adapt, adapt_moves, adaptive_variant_values, two_proportion_p_value
from udfs.rule_engine import Decision, RuleEngine, reload
from udfs.ruleset import (DEFAULT_RULES_PATH, SCHEMA_PATH, RulesetError, known_feature_names, load_ruleset,
                          validate_ruleset)
from udfs.ruleset import variant_values as _variant_values  # noqa: F401 - bench/rules_bench.py imports it

__all__ = [
    "DEFAULT_RULES_PATH",
    "SCHEMA_PATH",
    "Decision",
    "RuleEngine",
    "RulesetError",
    "ThresholdMove",
    "VARIANTS",
    "adapt",
    "adapt_moves",
    "adaptive_variant_values",
    "known_feature_names",
    "load_ruleset",
    "reload",
    "two_proportion_p_value",
    "validate_ruleset",
    "variant_for",
]
