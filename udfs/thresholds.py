"""Intent-score thresholds as quantiles of a model's validation scores, and reachability checks.

A model version's manifest records ``score_quantiles``: the scores of its validation set (out-of-fold
scores; models/train_uci.py) at the levels 0.00, 0.01, ..., 1.00. A rule may then say
``{"intent_score": {"op": ">=", "quantile": 0.9}}``, "the top decile of the model in force", instead of a fixed
probability that another model may never reach. :class:`ScoreQuantiles` turns a quantile into a score
(linear interpolation between the recorded levels, as ``numpy.quantile``'s default "linear" method does
between order statistics); :func:`unreachable_thresholds` lists the fixed thresholds a model's validation
scores never reach (what ``intentflow rules validate`` warns about).

Pure Python (reads JSON manifests; no onnxruntime).
"""
from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class QuantilesError(ValueError):
    """A manifest has no usable ``score_quantiles`` (missing, unsorted or of unequal lengths)."""


@dataclass(frozen=True)
class ScoreQuantiles:
    """The validation-score quantiles of one model version.

    Attributes:
        model_version: ``"<name>/<version>"``.
        levels: quantile levels in [0, 1], strictly increasing, from 0.0 to 1.0.
        values: the scores at those levels, non-decreasing, in [0, 1].
    """

    model_version: str
    levels: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        lv, vs = self.levels, self.values
        if (len(lv) != len(vs) or len(lv) < 2 or lv[0] != 0.0 or lv[-1] != 1.0
                or any(b <= a for a, b in zip(lv, lv[1:])) or any(b < a for a, b in zip(vs, vs[1:]))):
            raise QuantilesError(f"{self.model_version}: score_quantiles must run from level 0 to 1, increasing, "
                                 "with non-decreasing values of the same length")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "ScoreQuantiles":
        """From a manifest dict (``manifest.json`` as loaded).

        Raises:
            QuantilesError: no ``score_quantiles`` or a malformed one.
        """
        version = str(manifest.get("model_version") or f"{manifest.get('name')}/{manifest.get('version')}")
        q = manifest.get("score_quantiles")
        if not isinstance(q, Mapping) or "levels" not in q or "values" not in q:
            raise QuantilesError(f"{version}: the manifest records no score_quantiles (a model trained before "
                                 "quantile thresholds; retrain it, or give the rules fixed values)")
        return cls(version, tuple(float(x) for x in q["levels"]), tuple(float(x) for x in q["values"]))

    @classmethod
    def of_model(cls, name: str | None = None, version: int | None = None,
                 models_dir: str | Path | None = None) -> "ScoreQuantiles":
        """Of ``name``/``version`` under ``models_dir`` (defaults: udfs.scoring's model in force, latest).

        Raises:
            FileNotFoundError: no such model. QuantilesError: it records no quantiles.
        """
        from udfs.scoring import DEFAULT_MODEL_NAME, ModelRegistry

        path = ModelRegistry(models_dir).manifest_path(name or DEFAULT_MODEL_NAME, version)
        return cls.from_manifest(json.loads(Path(path).read_text(encoding="utf-8")))

    def value_at(self, quantile: float) -> float:
        """The score at ``quantile`` (in [0, 1]), linearly interpolated between the recorded levels.

        Raises:
            ValueError: ``quantile`` outside [0, 1].
        """
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {quantile}")
        lv, vs = self.levels, self.values
        i = bisect.bisect_right(lv, quantile) - 1
        if i >= len(lv) - 1:
            return vs[-1]
        t = (quantile - lv[i]) / (lv[i + 1] - lv[i])
        return vs[i] + t * (vs[i + 1] - vs[i])

    @property
    def min_score(self) -> float:
        """The lowest validation score."""
        return self.values[0]

    @property
    def max_score(self) -> float:
        """The highest validation score."""
        return self.values[-1]


def _intent_comparisons(node: Any, path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    if not isinstance(node, Mapping):
        return
    for key in ("all", "any"):
        for i, child in enumerate(node.get(key) or ()):
            yield from _intent_comparisons(child, f"{path}.{key}[{i}]")
    if "not" in node:
        yield from _intent_comparisons(node["not"], f"{path}.not")
    if isinstance(node.get("intent_score"), Mapping):
        yield node["intent_score"], f"{path}.intent_score"


def unreachable_thresholds(ruleset: Mapping[str, Any], quantiles: ScoreQuantiles) -> list[str]:
    """Warnings for the enabled rules' fixed intent-score thresholds that the model's validation scores never
    satisfy: ``>= v`` / ``> v`` above (or at, for ``>``) the highest validation score, ``<= v`` / ``< v``
    below (or at) the lowest. Quantile thresholds are always reachable and are not listed.

    Returns:
        one message per unreachable threshold, naming the rule, the condition path and the model's range.
    """
    out: list[str] = []
    lo, hi = quantiles.min_score, quantiles.max_score
    for rule in ruleset.get("rules") or ():
        if not rule.get("enabled", True):
            continue
        for cmp, path in _intent_comparisons(rule.get("when"), "when"):
            if "quantile" in cmp or "value" not in cmp:
                continue
            op, v = cmp.get("op"), float(cmp["value"])
            never = ((op == ">=" and v > hi) or (op == ">" and v >= hi) or (op == "<=" and v < lo)
                     or (op == "<" and v <= lo) or (op == "==" and not lo <= v <= hi))
            if never:
                out.append(f"rule {rule.get('id')!r} {path}: intent_score {op} {v:g} is never met by "
                           f"{quantiles.model_version} (its validation scores span {lo:.3f}-{hi:.3f}; "
                           f"p90 {quantiles.value_at(0.9):.3f}): give it as a quantile, e.g. \"quantile\": 0.9")
    return out


def stale_quantile_values(ruleset: Mapping[str, Any], quantiles: ScoreQuantiles) -> list[str]:
    """Warnings for quantile thresholds whose fallback ``value`` is not the quantile's score for the model
    (the browser's edge engine reads only ``value``, so it would decide with another threshold)."""
    out: list[str] = []
    for rule in ruleset.get("rules") or ():
        for cmp, path in _intent_comparisons(rule.get("when"), "when"):
            if "quantile" in cmp and "value" in cmp:
                want = quantiles.value_at(float(cmp["quantile"]))
                if float(cmp["value"]) != want:
                    out.append(f"rule {rule.get('id')!r} {path}: value {cmp['value']!r} is not quantile "
                               f"{cmp['quantile']:g} of {quantiles.model_version} ({want!r}); the server uses the "
                               "quantile, the browser's edge engine the value")
    return out


def quantile_paths(ruleset: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``[(rule id, quantile)]`` of the quantile thresholds of a ruleset (enabled or not)."""
    return [(str(rule.get("id")), float(cmp["quantile"]))
            for rule in ruleset.get("rules") or ()
            for cmp, _ in _intent_comparisons(rule.get("when"), "when") if "quantile" in cmp]
