"""``intentflow gate``: decide whether a trained candidate version replaces the version in force.

Reads the most recent held-out window of the product's own events (``--events`` JSONL and/or
``--kafka-topic`` between ``--from-ms`` and ``--to-ms``; choose a window after the candidate's training data:
a time-based split), builds the scored moments exactly as ``intentflow train`` does
(:func:`models.training_data.build_dataset`: one moment per applied event, labelled by a later conversion), scores
them with both versions through :class:`udfs.scoring.IntentScorer`, and applies
:func:`udfs.gate.gate_decision` (paired bootstrap CIs of the ROC-AUC and Brier differences, plus the live
shadow counts: ``--shadow-from-redis`` reads the job's counters, which it keeps while
``<models>/<name>/SHADOW`` names the candidate (:class:`udfs.scoring.ReloadingScorer` scores it beside the version
in force, per batch), or ``--shadow-counts``, a JSON of :class:`udfs.gate.ShadowCounts`).

Every decision is appended to the candidate's ``manifest.json`` under ``promotion`` (atomically); when it
passes, ``<models>/<name>/CURRENT`` is set to the candidate (atomically), which the job's
:class:`udfs.scoring.ReloadingScorer` follows within its check interval.

Training-only module.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from models.export import MODELS_DIR
from models.training_data import build_dataset, dedup_events, read_jsonl_events, read_kafka_events
from udfs.gate import DEFAULT_MIN_SHADOW_ROWS, ShadowCounts, gate_decision
from udfs.model_manifest import CURRENT_FILE
from udfs.scoring import IntentScorer, ModelRegistry


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def record_decision(models_dir: Path, name: str, candidate: int, current: int, decision: dict,
                    window: dict) -> dict:
    """Append the decision to the candidate's manifest; move ``CURRENT`` when it promotes. Returns the entry."""
    registry = ModelRegistry(models_dir)
    path = registry.manifest_path(name, candidate)
    manifest = json.loads(path.read_text())
    entry = {"decided_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "candidate": f"{name}/{candidate}", "current": f"{name}/{current}", "window": window, **decision}
    manifest.setdefault("promotion", []).append(entry)
    _write_atomically(path, json.dumps(manifest, indent=2, allow_nan=True) + "\n")
    if decision["promote"]:
        _write_atomically(models_dir / name / CURRENT_FILE, f"{candidate}\n")
    return entry


def shadow_counts_from_redis(model_version: str, redis_url: str | None = None, prefix: str | None = None) -> ShadowCounts:
    """The job's shadow counters of ``model_version`` (``{prefix}stats`` hash; udfs.scoring.ReloadingScorer)."""
    import redis

    from udfs.config import JobConfig, stack_settings
    from udfs.model_manifest import SHADOW_TOLERANCE

    client = redis.Redis.from_url(redis_url or stack_settings().redis_url)
    key = f"{prefix if prefix is not None else JobConfig().redis_prefix}stats"
    fields = [f"shadow_rows:{model_version}", f"shadow_differ:{model_version}", f"shadow_abs_diff_micro:{model_version}"]
    rows, differ, micro = (int(v or 0) for v in client.hmget(key, fields))
    return ShadowCounts(tolerance=SHADOW_TOLERANCE, rows=rows, differ=differ, sum_abs_diff=micro / 1e6)


@click.command("gate")
@click.option("--name", default="intent-lr", show_default=True)
@click.option("--candidate", type=int, required=True, help="the newly trained version")
@click.option("--current", type=int, default=None, help="the version in force (default: CURRENT, else the highest "
                                                         "version below the candidate)")
@click.option("--events", "events", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kafka-topic", default=None)
@click.option("--kafka-bootstrap", default=None)
@click.option("--from-ms", type=int, default=None)
@click.option("--to-ms", type=int, default=None)
@click.option("--conversion", type=click.Choice(["add_to_cart", "purchase", "any"]), default="add_to_cart",
              show_default=True)
@click.option("--shadow-counts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON of the live shadow counts (udfs.gate.ShadowCounts.as_dict)")
@click.option("--shadow-from-redis", is_flag=True,
              help="take the shadow counts from the job's counters ({prefix}stats in Redis, udfs.scoring.ReloadingScorer)")
@click.option("--min-shadow-rows", type=int, default=DEFAULT_MIN_SHADOW_ROWS, show_default=True)
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=MODELS_DIR, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def gate_cmd(name, candidate, current, events, kafka_topic, kafka_bootstrap, from_ms, to_ms, conversion,
             shadow_counts, shadow_from_redis, min_shadow_rows, models_dir, seed) -> None:
    """Compare a candidate with the version in force on a recent window; promote it when it is better."""
    registry = ModelRegistry(models_dir)
    if current is None:
        current = registry.current_version(name)
        if current is None:
            below = [v for v in registry.versions(name) if v < candidate]
            if not below:
                raise click.UsageError("no version in force to compare with: give --current")
            current = below[-1]
    raw = []
    for path in events:
        raw.extend(read_jsonl_events(path))
    if kafka_topic:
        from udfs.config import stack_settings

        raw.extend(read_kafka_events(kafka_bootstrap or stack_settings().kafka_bootstrap, kafka_topic, from_ms, to_ms))
    if not raw:
        raise click.UsageError("give --events and/or --kafka-topic: the held-out window")
    ds = build_dataset(dedup_events(raw), conversion)
    p_candidate = IntentScorer(registry.manifest_path(name, candidate)).score(ds.X)
    p_current = IntentScorer(registry.manifest_path(name, current)).score(ds.X)
    shadow = None
    if shadow_counts is not None:
        counts = json.loads(shadow_counts.read_text())
        shadow = ShadowCounts(tolerance=counts.get("tolerance", 0.05), thresholds=tuple(counts.get("thresholds", ())),
                              rows=counts["rows"], differ=counts.get("differ", 0), flips=counts.get("flips", 0),
                              sum_abs_diff=counts.get("mean_abs_diff", 0.0) * counts["rows"],
                              batches=counts.get("batches", 0))
    if shadow_from_redis:
        shadow = shadow_counts_from_redis(f"{name}/{candidate}")
    decision = gate_decision(ds.y, p_candidate, p_current, shadow=shadow, min_shadow_rows=min_shadow_rows, seed=seed)
    window = {"events": [str(p) for p in events], "kafka_topic": kafka_topic, "from_ms": from_ms, "to_ms": to_ms,
              "conversion": conversion, "moments": int(len(ds.y)), "sessions": ds.n_sessions,
              "event_time": [int(ds.ts_ms.min()), int(ds.ts_ms.max())] if len(ds.ts_ms) else None}
    record_decision(models_dir, name, candidate, current, decision, window)
    verdict = "PROMOTED" if decision["promote"] else "kept out"
    click.echo(f"{name}/{candidate} vs {name}/{current}: {verdict}; ROC-AUC diff {decision['roc_auc']['diff']:+.4f} "
               f"{decision['roc_auc']['ci']}, Brier diff {decision['brier']['diff']:+.5f} {decision['brier']['ci']}")
    for reason in decision["reasons"]:
        click.echo(f"  - {reason}")
    if not decision["promote"]:
        raise SystemExit(2)
