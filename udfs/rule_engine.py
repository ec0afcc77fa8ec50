"""The compiled rule engine: a validated ruleset compiled once into one generated Python function that
tests the rules in priority order (:class:`RuleEngine`), the :class:`Decision` it returns, and the hot
reload of the job's broadcast state (:func:`reload`). The rules' semantics: ``udfs/rules.py``."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from udfs.assignment import VARIANTS, variant_for
from udfs.ruleset import (DEFAULT_RULES_PATH, RulesetError, adaptive_comparison, known_feature_names, load_ruleset,
                          validate_ruleset, variant_values, walk_conditions)

_EMPTY: Mapping[str, Any] = {}


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
        values = self.constant(variant_values(comparison))
        pick = self.constant(partial(variant_for, rule_id, explore_pct=float(adaptive["explore_pct"])))
        return f"{values}[{pick}(e.get('anonymous_id') or e.get('session_id'))]"


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
            node["feature"] for r in enabled for node, _ in walk_conditions(r["when"], []) if "feature" in node)
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
        adaptive = adaptive_comparison(rule)
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
