"""Rulesets as data: the schema check (``schemas/rules.v1.json``) and the checks beyond it (known
features, unique ids, finite numbers, one adaptive threshold per rule), loading from a file, JSON text or
an object, and the helpers the engine and the adaptation share (walking a condition tree, the values of
an adaptive threshold). The rules' semantics: ``udfs/rules.py``."""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "rules.v1.json"
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "rules" / "default.v1.json"


class RulesetError(ValueError):
    """A ruleset is invalid. The message names the rule (id and index) and the field."""


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


def walk_conditions(node: Mapping[str, Any], path: list[Any]):
    """Yield (condition, path) for every node of a condition tree (already schema-valid)."""
    yield node, path
    for key in ("all", "any"):
        if key in node:
            for i, child in enumerate(node[key]):
                yield from walk_conditions(child, [*path, key, i])
    if "not" in node:
        yield from walk_conditions(node["not"], [*path, "not"])


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
        for node, path in walk_conditions(rule["when"], ["when"]):
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


def variant_values(comparison: Mapping[str, Any]) -> tuple[float, float, float]:
    """(control, lower, higher) threshold values of an adaptive comparison, clamped to [min, max]."""
    value = float(comparison["value"])
    adaptive = comparison["adaptive"]
    lo, hi, step = float(adaptive["min"]), float(adaptive["max"]), float(adaptive["step"])
    return value, max(lo, value - step), min(hi, value + step)


def adaptive_comparison(rule: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The comparison of ``rule`` that carries ``adaptive`` (at most one, validated), or None."""
    for node, _ in walk_conditions(rule["when"], []):
        comparison = node.get("intent_score") if "intent_score" in node else node
        if isinstance(comparison, Mapping) and "adaptive" in comparison:
            return comparison
    return None
