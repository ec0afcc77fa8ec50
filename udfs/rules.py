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
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from udfs.assignment import VARIANTS, variant_for  # noqa: F401 - part of this module's API

__all__ = [
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

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "rules.v1.json"
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "rules" / "default.v1.json"


_EMPTY: Mapping[str, Any] = {}


class RulesetError(ValueError):
    """A ruleset is invalid. The message names the rule (id and index) and the field."""


# --------------------------------------------------------------------------------------------- validation


def known_feature_names() -> tuple[str, ...]:
    """Names of ``udfs.features.FEATURES`` in vector order (imported lazily, on first validation)."""
    from udfs.features import FEATURE_NAMES  # noqa: PLC0415

    return tuple(FEATURE_NAMES)


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # noqa: PLC0415 - only needed when a ruleset is loaded, never per event

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _where(ruleset: Mapping[str, Any], path: Sequence[Any]) -> str:
    """'rule 'x' (rules[1]) when.all[0].op' for a path into the ruleset."""
    parts = list(path)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(parts[1], int):
        index = parts[1]
        rules = ruleset.get("rules")
        rule_id = None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], Mapping):
            rule_id = rules[index].get("id")
        prefix = f"rule {rule_id!r} (rules[{index}])" if rule_id is not None else f"rules[{index}]"
        parts = parts[2:]
    field = ""
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    if prefix and field:
        return f"{prefix} field {field}"
    return prefix or (f"field {field}" if field else "ruleset")


def _schema_error_message(ruleset: Mapping[str, Any], error) -> str:
    # A condition is a oneOf; pick the branch its key names (all, feature, event_type, ...) and report
    # that branch's error instead of "is not valid under any of the given schemas".
    while error.validator == "oneOf" and isinstance(error.instance, Mapping):
        import jsonschema  # noqa: PLC0415

        meant = [i for i, branch in enumerate(error.validator_value) if branch.get("required", [None])[0] in error.instance]
        branch_errors = [e for e in error.context if meant and e.relative_schema_path[0] == meant[0]]
        if not branch_errors:
            return (f"{_where(ruleset, error.absolute_path)}: not a condition: {json.dumps(error.instance)[:200]}"
                    " (expected one of all/any/not/feature+op+value/intent_score/event_type/"
                    "event_element_role/event_has)")
        error = jsonschema.exceptions.best_match(branch_errors)
    return f"{_where(ruleset, error.absolute_path)}: {error.message}"


def _walk_conditions(node: Mapping[str, Any], path: list[Any]):
    """Yield (condition, path) for every node of a condition tree (already schema-valid)."""
    yield node, path
    for key in ("all", "any"):
        if key in node:
            for i, child in enumerate(node[key]):
                yield from _walk_conditions(child, [*path, key, i])
    if "not" in node:
        yield from _walk_conditions(node["not"], [*path, "not"])


def validate_ruleset(ruleset: Any, known_features: Iterable[str] | None = None) -> dict[str, Any]:
    """Validate a ruleset and return a normalized deep copy (``enabled`` and ``params`` filled in).

    Args:
        ruleset: the parsed JSON object.
        known_features: allowed feature names; default :func:`known_feature_names`.
    Raises:
        RulesetError: schema violation, unknown feature, duplicate rule id, non-finite number, adaptive
            range not containing the value, more than one adaptive threshold in a rule. The message
            names the rule and the field, e.g. ``rule 'x' (rules[1]) field when.all[0].feature: ...``.
    """
    if not isinstance(ruleset, Mapping):
        raise RulesetError(f"ruleset: expected a JSON object, got {type(ruleset).__name__}")
    validator = _validator()
    errors = sorted(validator.iter_errors(ruleset), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        import jsonschema  # noqa: PLC0415

        error = jsonschema.exceptions.best_match(errors)
        raise RulesetError(_schema_error_message(ruleset, error))
    features = set(known_feature_names() if known_features is None else known_features)
    normalized = copy.deepcopy(dict(ruleset))
    experiment = normalized.get("experiment")
    if experiment is not None:
        from udfs.experiments import DEFAULT_ATTRIBUTION_WINDOW_MS, DEFAULT_BUCKET_MS  # noqa: PLC0415

        experiment.setdefault("attribution_window_ms", DEFAULT_ATTRIBUTION_WINDOW_MS)
        experiment.setdefault("bucket_ms", DEFAULT_BUCKET_MS)
    seen: dict[str, int] = {}
    for index, rule in enumerate(normalized["rules"]):
        where = f"rule {rule['id']!r} (rules[{index}])"
        if rule["id"] in seen:
            raise RulesetError(f"{where} field id: duplicate rule id, also rules[{seen[rule['id']]}]")
        seen[rule["id"]] = index
        rule.setdefault("enabled", True)
        rule["action"].setdefault("params", {})
        adaptive_paths = []
        for node, path in _walk_conditions(rule["when"], ["when"]):
            field = _where(normalized, ["rules", index, *path]).split(" field ", 1)[-1]
            comparison = node.get("intent_score") if "intent_score" in node else node if "feature" in node else None
            if "feature" in node and node["feature"] not in features:
                raise RulesetError(f"{where} field {field}.feature: unknown feature {node['feature']!r}"
                                   f" (known: {', '.join(sorted(features))})")
            if comparison is None:
                continue
            if "quantile" in comparison:  # issue 17: resolved against the model in force (udfs/thresholds.py)
                if not math.isfinite(comparison["quantile"]) or "adaptive" in comparison:
                    raise RulesetError(f"{where} field {field}.quantile: a finite quantile, without adaptive")
                if "value" not in comparison:
                    continue
            value = comparison["value"]
            if not math.isfinite(value):
                raise RulesetError(f"{where} field {field}.value: must be a finite number, got {value!r}")
            adaptive = comparison.get("adaptive")
            if adaptive is not None:
                adaptive_paths.append(field)
                lo, hi = adaptive["min"], adaptive["max"]
                if not all(math.isfinite(x) for x in (lo, hi, adaptive["step"])):
                    raise RulesetError(f"{where} field {field}.adaptive: min, max, step must be finite")
                if not lo <= value <= hi:
                    raise RulesetError(f"{where} field {field}.adaptive: value {value} outside [min {lo}, max {hi}]")
                if comparison["op"] in ("==", "!="):
                    raise RulesetError(f"{where} field {field}.adaptive: only <, <=, >, >= thresholds can adapt")
        if len(adaptive_paths) > 1:
            raise RulesetError(f"{where} field when: at most one adaptive threshold per rule, found"
                               f" {len(adaptive_paths)} ({', '.join(adaptive_paths)})")
    return normalized


def load_ruleset(source: str | bytes | Path | Mapping[str, Any],
                 known_features: Iterable[str] | None = None) -> dict[str, Any]:
    """Parse and validate a ruleset from a file path, JSON text/bytes (e.g. a ``rules`` topic record) or
    an already parsed object. A ``str`` is JSON text if it starts with ``{`` (after whitespace), else a path.

    Raises:
        RulesetError: unreadable file, invalid JSON (with line/column), or an invalid ruleset.
    """
    if isinstance(source, Mapping):
        return validate_ruleset(source, known_features)
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesetError(f"ruleset file {source}: {exc.strerror or exc}") from exc
    elif isinstance(source, bytes | bytearray):
        try:
            text = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesetError(f"ruleset: not UTF-8 ({exc})") from exc
    else:
        text = source
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RulesetError(f"ruleset: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return validate_ruleset(parsed, known_features)


def _reject_constant(name: str) -> float:
    raise RulesetError(f"ruleset: {name} is not a JSON number")


# --------------------------------------------------------------------------------------------- variants


def _variant_values(comparison: Mapping[str, Any]) -> tuple[float, float, float]:
    """(control, lower, higher) threshold values of an adaptive comparison, clamped to [min, max]."""
    value = float(comparison["value"])
    adaptive = comparison["adaptive"]
    lo, hi, step = float(adaptive["min"]), float(adaptive["max"]), float(adaptive["step"])
    return value, max(lo, value - step), min(hi, value + step)


# --------------------------------------------------------------------------------------------- compiling


@dataclass(frozen=True, slots=True)
class Decision:
    """The action chosen for one event (docs/contracts.md §4 without the job's fields).

    ``params`` is a fresh dict per decision (event references resolved; for an adaptive rule also
    ``experiment_id`` and ``variant``). ``event_ts_ms`` is the triggering event's event time (ms);
    the caller stores it as ``last_fired[rule_id]``.
    """

    action: str
    params: dict[str, Any]
    rule_id: str
    rule_version: int
    rules_version: str
    priority: int
    event_ts_ms: int

    def as_dict(self) -> dict[str, Any]:
        """``{"action", "params", "rule_id", "rule_version", "rules_version"}``."""
        return {"action": self.action, "params": self.params, "rule_id": self.rule_id,
                "rule_version": self.rule_version, "rules_version": self.rules_version}

    def to_action(self, *, session_id: str, model_version: str, intent_score: float, event_id: str,
                  decided_at_ms: int) -> dict[str, Any]:
        """The full action of docs/contracts.md §4 (what goes to Redis and the ``actions`` topic)."""
        return {"session_id": session_id, **self.as_dict(), "model_version": model_version,
                "intent_score": float(intent_score), "event_id": event_id, "event_ts_ms": self.event_ts_ms,
                "decided_at_ms": int(decided_at_ms)}


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    version: int
    priority: int
    cooldown_ms: int
    action: str
    literal_params: tuple[tuple[str, Any], ...]
    event_params: tuple[tuple[str, str, str], ...]  # (param, "event"|"page"|"props", key)
    explore_pct: float  # of its adaptive threshold; 0 = no experiment params


def _event_access(path: str) -> tuple[str, str]:
    """('e'|'g'|'p', key) for an event path: e = event, g = page, p = props."""
    if path.startswith("page."):
        return "g", path[5:]
    if path.startswith("props."):
        return "p", path[6:]
    return "e", path


class _Compiler:
    """Turns validated conditions into Python expression source."""

    def __init__(self, feature_key, quantiles=None) -> None:
        self.feature_key = feature_key  # name -> subscript used in the generated code
        self.quantiles = quantiles  # udfs.thresholds.ScoreQuantiles for quantile thresholds, or None
        self.namespace: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def expr(self, node: Mapping[str, Any], rule_id: str) -> str:
        if "all" in node:
            return "(" + " and ".join(self.expr(c, rule_id) for c in node["all"]) + ")"
        if "any" in node:
            return "(" + " or ".join(self.expr(c, rule_id) for c in node["any"]) + ")"
        if "not" in node:
            return f"(not {self.expr(node['not'], rule_id)})"
        if "feature" in node:
            return f"(f[{self.feature_key(node['feature'])!r}] {node['op']} {self.threshold(node, rule_id)})"
        if "intent_score" in node:
            cmp = node["intent_score"]
            return f"(s {cmp['op']} {self.threshold(cmp, rule_id)})"
        if "event_type" in node:
            return f"(e.get('type') == {str(node['event_type'])!r})"
        if "event_element_role" in node:
            return f"(p.get('element_role') == {str(node['event_element_role'])!r})"
        if "event_has" in node:
            var, key = _event_access(node["event_has"])
            return f"({var}.get({key!r}) is not None)"
        raise RulesetError(f"rule {rule_id!r}: unknown condition {node!r}")  # unreachable after validation

    def threshold(self, comparison: Mapping[str, Any], rule_id: str) -> str:
        if "quantile" in comparison and (self.quantiles is not None or "value" not in comparison):
            if self.quantiles is None:
                raise RulesetError(f"rule {rule_id!r}: a quantile threshold without a value needs a model that "
                                   "records score_quantiles (udfs/thresholds.py)")
            return repr(float(self.quantiles.value_at(float(comparison["quantile"]))))
        adaptive = comparison.get("adaptive")
        if adaptive is None or not adaptive.get("explore_pct", 0):
            return repr(float(comparison["value"]))
        values = self.constant(_variant_values(comparison))
        pick = self.constant(partial(variant_for, rule_id, explore_pct=float(adaptive["explore_pct"])))
        return f"{values}[{pick}(e.get('anonymous_id') or e.get('session_id'))]"


def _adaptive_comparison(rule: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for node, _ in _walk_conditions(rule["when"], []):
        comparison = node.get("intent_score") if "intent_score" in node else node
        if isinstance(comparison, Mapping) and "adaptive" in comparison:
            return comparison
    return None


def adaptive_variant_values(ruleset: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The threshold each variant of each enabled adaptive rule is judged by:
    ``{experiment id "<rule id>@<rule version>": {"control" | "lower" | "higher": value}}`` (values in the
    unit of the compared feature, lower/higher clamped to [min, max] as the engine clamps them). Rules
    without an adaptive threshold or with ``explore_pct`` 0 are absent. ``ruleset`` must be valid
    (:func:`validate_ruleset`); nothing is raised for a valid one."""
    out: dict[str, dict[str, float]] = {}
    for rule in ruleset["rules"]:
        comparison = _adaptive_comparison(rule)
        if comparison is None or not rule.get("enabled", True) or not comparison["adaptive"].get("explore_pct", 0):
            continue
        out[f"{rule['id']}@{rule['version']}"] = dict(zip(VARIANTS, _variant_values(comparison)))
    return out


class RuleEngine:
    """A validated ruleset compiled for per-event evaluation. Immutable; build a new one to reload.
    Picklable (it pickles as its ruleset and is recompiled on load), e.g. for operator state.

    Args:
        ruleset: a ruleset object (validated here) — or use :meth:`from_file` / :meth:`from_json`.
        known_features: allowed feature names; default :func:`known_feature_names`. Also the index
            order of :meth:`evaluate_vector` (the order of ``FEATURES``).
    Raises:
        RulesetError: the ruleset is invalid.
    """

    def __init__(self, ruleset: Mapping[str, Any], known_features: Iterable[str] | None = None,
                 score_quantiles=None, resolved_for: str | None = None) -> None:
        order = tuple(known_feature_names() if known_features is None else known_features)
        self.ruleset: dict[str, Any] = validate_ruleset(ruleset, order)
        # quantile thresholds (issue 17) resolve against a model's validation scores: the given
        # udfs.thresholds.ScoreQuantiles, else those of the default model in force; when no model records
        # them, a quantile threshold uses its "value" (and without one the ruleset is refused)
        from udfs.thresholds import QuantilesError, ScoreQuantiles, quantile_paths  # noqa: PLC0415

        uses_quantiles = bool(quantile_paths(self.ruleset))
        if uses_quantiles and score_quantiles is None:
            try:
                score_quantiles = ScoreQuantiles.of_model()
            except (FileNotFoundError, QuantilesError):
                score_quantiles = None
        self.score_quantiles = score_quantiles if uses_quantiles else None
        self.uses_quantiles = uses_quantiles
        #: the model version the quantile thresholds were resolved for (None: the ruleset has none, or no model
        #: could resolve them); ``score_quantiles.model_version`` names the model whose quantiles are used
        #: (the previous one, when the model in force records none: see :meth:`for_model`)
        self.quantile_model_version: str | None = (
            resolved_for or (self.score_quantiles.model_version if self.score_quantiles else None))
        self.rules_version: str = self.ruleset["rules_version"]
        self.feature_order: tuple[str, ...] = order
        enabled = [r for r in self.ruleset["rules"] if r["enabled"]]
        enabled.sort(key=lambda r: (-r["priority"], r["id"]))
        self._rules: tuple[_CompiledRule, ...] = tuple(self._compile_rule(r) for r in enabled)
        from udfs.experiments import experiment_config  # noqa: PLC0415

        #: the ruleset's experiment (holdout split, attribution window), or None (udfs/experiments.py)
        self.experiment = experiment_config(self.ruleset)
        #: ``{rule id: explore_pct}`` of the enabled rules (0 without an adaptive threshold)
        self.explore_pcts: dict[str, float] = {r.id: r.explore_pct for r in self._rules}
        #: ``(experiment id "<rule id>@<version>", rule id, explore_pct)`` of the enabled adaptive thresholds
        self.adaptive_experiments: tuple[tuple[str, str, float], ...] = tuple(
            (f"{r.id}@{r.version}", r.id, r.explore_pct) for r in self._rules if r.explore_pct)
        self.feature_names: frozenset[str] = frozenset(
            node["feature"] for r in enabled for node, _ in _walk_conditions(r["when"], []) if "feature" in node)
        self._match = self._compile_matcher(enabled, lambda name: name)
        index = {name: i for i, name in enumerate(order)}
        self._match_vector = self._compile_matcher(enabled, index.__getitem__)

    # -- construction

    @classmethod
    def from_file(cls, path: str | Path, known_features: Iterable[str] | None = None) -> "RuleEngine":
        """Load, validate and compile a ruleset file. Raises RulesetError."""
        return cls(load_ruleset(Path(path), known_features), known_features)

    @classmethod
    def from_json(cls, text: str | bytes, known_features: Iterable[str] | None = None) -> "RuleEngine":
        """Validate and compile a ruleset from JSON text (e.g. the value of a ``rules`` topic record).
        Raises RulesetError."""
        if isinstance(text, str) and not text.lstrip().startswith("{"):
            raise RulesetError("ruleset: JSON text must be an object starting with '{'")
        return cls(load_ruleset(text, known_features), known_features)

    @classmethod
    def default(cls, known_features: Iterable[str] | None = None) -> "RuleEngine":
        """The engine of ``rules/default.v1.json``."""
        return cls.from_file(DEFAULT_RULES_PATH, known_features)

    @staticmethod
    def _compile_rule(rule: Mapping[str, Any]) -> _CompiledRule:
        literal, from_event = [], []
        for key, value in rule["action"]["params"].items():
            if isinstance(value, Mapping):
                var, field = _event_access(value["$event"])
                from_event.append((key, var, field))
            else:
                literal.append((key, value))
        adaptive = _adaptive_comparison(rule)
        return _CompiledRule(
            id=rule["id"], version=int(rule["version"]), priority=int(rule["priority"]),
            cooldown_ms=int(rule["cooldown_ms"]), action=rule["action"]["name"],
            literal_params=tuple(literal), event_params=tuple(from_event),
            explore_pct=float(adaptive["adaptive"].get("explore_pct", 0)) if adaptive else 0.0)

    def _compile_matcher(self, rules: Sequence[Mapping[str, Any]], feature_key):
        compiler = _Compiler(feature_key, self.score_quantiles)
        lines = ["def _match(f, s, e, p, g):"]
        for i, rule in enumerate(rules):
            lines.append(f"    if {compiler.expr(rule['when'], rule['id'])}: return {i}")
        lines.append("    return -1")
        source = "\n".join(lines)
        namespace: dict[str, Any] = {"__builtins__": {}, **compiler.namespace}
        exec(compile(source, f"<ruleset {self.rules_version}>", "exec"), namespace)  # noqa: S102 - validated data
        fn = namespace["_match"]
        fn.source = source
        return fn

    # -- evaluation

    def evaluate(self, features: Mapping[str, float], intent_score: float, event: Mapping[str, Any],
                 last_fired: Mapping[str, int]) -> Decision | None:
        """The action for one event, or None (no rule matched, or the winner is cooling down).

        Args:
            features: ``{feature name: value}``; must hold every name in :attr:`feature_names`
                (units as in ``udfs.features.FEATURES``).
            intent_score: purchase-intent probability 0-1 from the model.
            event: the triggering event (docs/contracts.md §1); ``ts_ms`` (event time, ms) is required.
            last_fired: ``{rule id: event time ms when it last fired for this session}`` (caller's state).
        Raises:
            KeyError: a feature the rules use is missing from ``features``, or the event has no ``ts_ms``.
        """
        return self._decide(self._match, features, intent_score, event, last_fired)[0]

    def evaluate_vector(self, features: Sequence[float], intent_score: float, event: Mapping[str, Any],
                        last_fired: Mapping[str, int]) -> Decision | None:
        """Like :meth:`evaluate` with ``features`` as a list/1-D array in :attr:`feature_order`
        (``SessionState.features()``); a numpy array is converted with ``tolist()`` once."""
        if hasattr(features, "tolist"):
            features = features.tolist()
        return self._decide(self._match_vector, features, intent_score, event, last_fired)[0]

    def evaluate_vector_with_reason(self, features: Sequence[float], intent_score: float,
                                    event: Mapping[str, Any], last_fired: Mapping[str, int]
                                    ) -> tuple[Decision | None, str]:
        """:meth:`evaluate_vector` with the reason of :meth:`evaluate_with_reason` (the job's hot path)."""
        if hasattr(features, "tolist"):
            features = features.tolist()
        return self._decide(self._match_vector, features, intent_score, event, last_fired)

    def evaluate_with_reason(self, features: Mapping[str, float], intent_score: float,
                             event: Mapping[str, Any], last_fired: Mapping[str, int]) -> tuple[Decision | None, str]:
        """``(decision, reason)`` with reason ``"fired"``, ``"no_match"`` or ``"cooldown:<rule id>"``
        (for the job's ``suppressed`` counter)."""
        return self._decide(self._match, features, intent_score, event, last_fired)

    def _decide(self, match, features, intent_score, event, last_fired) -> tuple[Decision | None, str]:
        page = event.get("page") or _EMPTY
        props = event.get("props") or _EMPTY
        try:
            index = match(features, intent_score, event, props, page)
        except (KeyError, IndexError) as exc:
            raise KeyError(f"features lack {exc.args[0]!r}, used by ruleset {self.rules_version}") from exc
        if index < 0:
            return None, "no_match"
        rule = self._rules[index]
        ts_ms = int(event["ts_ms"])
        last_ms = last_fired.get(rule.id)
        if last_ms is not None and ts_ms - last_ms < rule.cooldown_ms:
            return None, f"cooldown:{rule.id}"
        params = dict(rule.literal_params)
        for key, var, field in rule.event_params:
            source = event if var == "e" else page if var == "g" else props
            params[key] = source.get(field)
        if rule.explore_pct:
            params["experiment_id"] = f"{rule.id}@{rule.version}"
            params["variant"] = VARIANTS[variant_for(rule.id, event.get("anonymous_id") or event.get("session_id"),
                                                     rule.explore_pct)]
        return Decision(rule.action, params, rule.id, rule.version, self.rules_version, rule.priority, ts_ms), "fired"

    def __reduce__(self):
        # The generated matcher functions do not pickle; rebuild from the (validated) ruleset instead.
        return (RuleEngine, (self.ruleset, self.feature_order, self.score_quantiles, self.quantile_model_version))

    def for_model(self, manifest: Mapping[str, Any]) -> "RuleEngine":
        """This ruleset with its quantile thresholds resolved for the model of ``manifest`` (its raw dict);
        ``self`` when the ruleset has none or they already are for that model.

        A model whose manifest records no ``score_quantiles`` (e.g. intent-lr/1) keeps the thresholds resolved
        so far (logged once per model), so the job never stops for it.
        """
        import logging  # noqa: PLC0415

        from udfs.thresholds import QuantilesError, ScoreQuantiles  # noqa: PLC0415

        version = str(manifest.get("model_version") or f"{manifest.get('name')}/{manifest.get('version')}")
        if not self.uses_quantiles or self.quantile_model_version == version:
            return self
        try:
            quantiles = ScoreQuantiles.from_manifest(manifest)
        except QuantilesError as exc:
            kept = self.score_quantiles.model_version if self.score_quantiles else "their values"
            logging.getLogger(__name__).warning("quantile thresholds kept from %s: %s", kept, exc)
            return RuleEngine(self.ruleset, self.feature_order, self.score_quantiles, resolved_for=version)
        return RuleEngine(self.ruleset, self.feature_order, quantiles)

    def rule_ids(self) -> tuple[str, ...]:
        """Enabled rule ids in evaluation order (priority descending, then id)."""
        return tuple(r.id for r in self._rules)

    def __repr__(self) -> str:
        return f"RuleEngine(rules_version={self.rules_version!r}, rules={list(self.rule_ids())})"


def reload(current: RuleEngine | None, source: str | bytes | Path | Mapping[str, Any],
           known_features: Iterable[str] | None = None) -> tuple[RuleEngine | None, str | None]:
    """Hot reload for the job's broadcast state: ``(engine to use, None)`` when ``source`` is a valid
    ruleset, else ``(current, reason)`` — the previous engine stays and the reason goes to the DLQ/log."""
    try:
        if isinstance(source, Mapping):
            return RuleEngine(source, known_features), None
        return RuleEngine(load_ruleset(source, known_features), known_features), None
    except RulesetError as exc:
        return current, str(exc)


# --------------------------------------------------------------------------------------------- adapting


def two_proportion_p_value(conversions_a: int, exposures_a: int, conversions_b: int, exposures_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (H0: equal conversion rates).

    Returns 1.0 when a group is empty or the pooled rate is 0 or 1 (no evidence either way).
    Raises ValueError when conversions exceed exposures or a count is negative.
    """
    from scipy.stats import norm  # noqa: PLC0415 - only for adapt, never per event

    for c, n in ((conversions_a, exposures_a), (conversions_b, exposures_b)):
        if c < 0 or n < 0 or c > n:
            raise ValueError(f"need 0 <= conversions <= exposures, got {c} of {n}")
    if exposures_a == 0 or exposures_b == 0:
        return 1.0
    pooled = (conversions_a + conversions_b) / (exposures_a + exposures_b)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / exposures_a + 1 / exposures_b))
    z = (conversions_a / exposures_a - conversions_b / exposures_b) / se
    return float(2 * norm.sf(abs(z)))


@dataclass(frozen=True, slots=True)
class ThresholdMove:
    """One adaptive threshold moved by :func:`adapt`: from ``old_value`` to ``new_value`` (variant
    ``variant``), with the conversion rates, the relative lift over control and the test's p-value."""

    rule_id: str
    experiment_id: str
    variant: str
    old_value: float
    new_value: float
    control_rate: float
    variant_rate: float
    lift: float
    p_value: float


def adapt_moves(ruleset: Mapping[str, Any], exposures: Mapping[str, Mapping[str, int]],
                conversions: Mapping[str, Mapping[str, int]], *, alpha: float = 0.05,
                min_exposures: int = 200, test: str = "z") -> list[ThresholdMove]:
    """The threshold moves :func:`adapt` would make, without changing anything.

    Args:
        exposures: ``{experiment id: {variant: sessions}}``, experiment id ``"<rule id>@<rule version>"``,
            variant in :data:`VARIANTS`. Count sessions *assigned* to the variant (:func:`variant_for`),
            whether or not the action fired: comparing only sessions that got the action would compare
            populations the thresholds themselves selected.
        conversions: same shape, sessions of those that converted (a ``purchase`` event).
        alpha: family-wise significance level; each of the two variants is tested against control at
            ``alpha / 2`` (Bonferroni). 0.05 is the conventional level, our choice.
        min_exposures: sessions needed in control and in the variant before testing (our choice, 200:
            keeps the normal approximation of the z-test reasonable at conversion rates of a few %).
        test: ``"z"``: the pooled two-proportion z-test (:func:`two_proportion_p_value`), valid when
            read once at a fixed horizon; ``"msprt"``: the always-valid p-value of the mixture SPRT
            (``udfs.experiment_stats.msprt``, Johari et al. 2022), valid however often the counts are
            read — what a scheduled ``intentflow rules adapt --every-s`` needs.
    Raises:
        ValueError: a count is negative or conversions exceed exposures, or an unknown ``test``.
    """
    if test not in ("z", "msprt"):
        raise ValueError(f"test must be 'z' or 'msprt', got {test!r}")
    moves = []
    for rule in ruleset["rules"]:
        comparison = _adaptive_comparison(rule)
        if comparison is None or not comparison["adaptive"].get("explore_pct", 0):
            continue
        experiment_id = f"{rule['id']}@{rule['version']}"
        n, c = exposures.get(experiment_id, {}), conversions.get(experiment_id, {})
        n0, c0 = int(n.get("control", 0)), int(c.get("control", 0))
        if n0 < min_exposures:
            continue
        values = _variant_values(comparison)
        best = None
        for i in (1, 2):
            ni, ci = int(n.get(VARIANTS[i], 0)), int(c.get(VARIANTS[i], 0))
            if ni < min_exposures or values[i] == values[0]:
                continue
            if test == "msprt":
                from udfs.experiment_stats import msprt  # noqa: PLC0415

                p_value = msprt([(ci, ni, c0, n0)], alpha=alpha / 2, min_units=min_exposures).p_value
            else:
                p_value = two_proportion_p_value(ci, ni, c0, n0)
            rate_i, rate_0 = ci / ni, c0 / n0
            if p_value < alpha / 2 and rate_i > rate_0 and (best is None or rate_i > best.variant_rate):
                best = ThresholdMove(rule["id"], experiment_id, VARIANTS[i], values[0], values[i], rate_0, rate_i,
                                     (rate_i - rate_0) / rate_0 if rate_0 else math.inf, p_value)
        if best is not None:
            moves.append(best)
    return moves


def _bump_rules_version(rules_version: str, today: str | None) -> str:
    day, _, n = rules_version.rpartition(".")
    if today is None or today == day:
        return f"{day}.{int(n) + 1}"
    return f"{today}.1"


def adapt(ruleset: Mapping[str, Any], exposures: Mapping[str, Mapping[str, int]],
          conversions: Mapping[str, Mapping[str, int]], *, alpha: float = 0.05, min_exposures: int = 200,
          today: str | None = None, known_features: Iterable[str] | None = None, test: str = "z") -> dict[str, Any]:
    """Adaptive thresholds through feedback: a new ruleset where each adaptive threshold whose ``lower``
    or ``higher`` variant converted significantly better than ``control`` (see :func:`adapt_moves`) is
    moved to that variant's value. Each moved rule's ``version`` is incremented (so its experiment id,
    and the counting, start afresh) and ``rules_version`` becomes ``<day>.<n+1>`` (``today`` as
    'YYYY-MM-DD' starts ``<today>.1`` on a new day). Pure: the input is not modified; with no move the
    result equals the input (same versions).

    Raises:
        RulesetError: the result does not validate (cannot happen for a valid input; checked anyway).
        ValueError: see :func:`adapt_moves`.
    """
    moves = adapt_moves(ruleset, exposures, conversions, alpha=alpha, min_exposures=min_exposures, test=test)
    out = copy.deepcopy(dict(ruleset))
    if not moves:
        return out
    by_rule = {m.rule_id: m for m in moves}
    for rule in out["rules"]:
        move = by_rule.get(rule["id"])
        if move is None:
            continue
        comparison = _adaptive_comparison(rule)
        new_value = move.new_value
        comparison["value"] = int(new_value) if float(new_value).is_integer() and isinstance(
            comparison["value"], int) else new_value
        rule["version"] = int(rule["version"]) + 1
    out["rules_version"] = _bump_rules_version(out["rules_version"], today)
    validate_ruleset(out, known_features)
    return out
