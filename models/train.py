"""Train the intent model from replayed events and export it as a versioned ONNX model.

``intentflow train`` (this module's :data:`train_cmd`):

1. reads recorded contract events: JSONL files of events (``--events``, one event per line, e.g. a
   dump of ``signals.raw``), a Kafka topic between two record timestamps (``--kafka-topic``,
   ``--from-ms``, ``--to-ms``) and/or the OTTO sessions (``--otto``, through
   :func:`udfs.datasets.otto.iter_events`, which re-splits user histories at 30-min gaps);
   duplicates by ``event_id`` are dropped (retries and overlapping files reuse ids);
2. replays each session through :func:`udfs.session.replay_session`, the same code the Flink job runs,
   and takes one scored moment per *applied* event: the feature vector as of that event;
3. labels a moment 1 when a conversion event (``add_to_cart``, ``purchase`` or either, ``--conversion``)
   of the same session has a strictly later ``ts_ms``; features never look past the moment (they are
   computed from the events up to it) and conversions at the same ms are not "later";
4. keeps the features the training data can teach: a feature that is constant there (OTTO has no
   scroll, hover, forms, trajectories, device or network context), duplicates another one, or means
   something else in that data than live (:data:`OTTO_NOT_COMPARABLE`) is left OUT of the model's
   input and listed in the manifest's ``features_not_used`` with the reason;
5. splits by session, no session on both sides: by time for the product's own events (``--split time``, the
   default with ``--events``/``--kafka-topic``: the latest sessions are held out,
   :func:`models.training_data.time_split`), at random for the OTTO sample (``--split session``,
   ``GroupShuffleSplit``; its ~140 sessions span weeks of unrelated users); fits
   ``StandardScaler + LogisticRegression`` calibrated with ``CalibratedClassifierCV`` (sigmoid, folds
   grouped by session) on the training part, measures the held-out part, exports ONNX with skl2onnx
   without ZipMap and with a single ``float32[N]`` output ``intent_score``, checks onnxruntime against
   scikit-learn on the held-out rows, and writes ``<models-dir>/<name>/<version>/`` with
   ``model.onnx``, ``manifest.json`` and ``README.md``; the manifest's ``score_quantiles`` are the held-out
   scores at every percentile (quantile thresholds of rules, udfs/thresholds.py).

Training-only module: imports scikit-learn, skl2onnx and onnx; the job never imports it. This module
holds the run (:func:`train`) and its command; the data are read and labelled in
``models/training_data.py``, the model is fit and measured in ``models/fit.py``, exported and versioned
in ``models/export.py``, and its README is written by ``models/report.py``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import numpy as np

from models.export import INPUT_NAME, MODELS_DIR, OUTPUT_NAME, TARGET_OPSET, export_onnx, next_version, onnx_scores
from models.fit import CALIBRATION_FOLDS, fit_model, logistic_coefficients, metrics
from models.report import render_readme
from models.training_data import (CONVERSION_TYPES, OTTO_NOT_COMPARABLE, build_dataset, dedup_events,
                                  learnable_features, read_jsonl_events, read_kafka_events, time_split)
from udfs.datasets import data_dir
from udfs.features import FEATURE_NAMES, FEATURES
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig

#: Held-out share of sessions. 0.3: our choice; with the ~140 OTTO sample sessions a smaller test part
#: holds too few converting sessions for a stable ROC-AUC.
DEFAULT_TEST_SIZE = 0.3

#: Levels of the manifest's ``score_quantiles``: every percentile (as models/train_uci.py).
QUANTILE_LEVELS = tuple(round(q / 100, 2) for q in range(101))


def _file_info(path: Path) -> dict[str, Any]:
    """Path (relative to the data folder when inside it, as ``$INTENTFLOW_DATA_DIR/...``) and sha256."""
    resolved = path.resolve()
    try:
        shown = "$INTENTFLOW_DATA_DIR/" + str(resolved.relative_to(data_dir()))
    except ValueError:
        shown = str(path)
    files = [resolved] if resolved.is_file() else sorted(resolved.glob("*.jsonl"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return {"path": shown, "sha256": digest.hexdigest(), "files": [f.name for f in files]}


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")


def train(*, otto: Iterable[Path] = (), events: Iterable[Path] = (), kafka_topic: str | None = None,
          kafka_bootstrap: str | None = None, from_ms: int | None = None, to_ms: int | None = None,
          conversion: str = "add_to_cart",
          name: str = "intent-lr", version: int | None = None, models_dir: Path = MODELS_DIR,
          test_size: float = DEFAULT_TEST_SIZE, seed: int = 0, exclude: Iterable[str] = (),
          force: bool = False, noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG,
          split: str | None = None) -> dict[str, Any]:
    """Run the whole training (see the module docstring); return the manifest written.

    ``split``: ``"time"`` (latest sessions held out) or ``"session"`` (random sessions); None: ``"session"``
    when the only input is ``otto``, else ``"time"``.

    Raises:
        click.UsageError: no input, or the version folder exists and ``force`` is False.
        ValueError: too little data (one class only, or too few converting sessions to calibrate).
    """
    from sklearn.model_selection import GroupShuffleSplit

    otto, events = [Path(p) for p in otto], [Path(p) for p in events]
    if not otto and not events and not kafka_topic:
        raise click.UsageError("give --otto, --events and/or --kafka-topic")
    stats: dict[str, int] = {}
    raw: list[dict[str, Any]] = []
    if otto:
        from udfs.datasets.otto import iter_events as otto_events

        for path in otto:
            raw.extend(otto_events(path, stats=stats))
    for path in events:
        raw.extend(read_jsonl_events(path))
    if kafka_topic:
        from udfs.config import stack_settings

        bootstrap = kafka_bootstrap or stack_settings().kafka_bootstrap
        raw.extend(read_kafka_events(bootstrap, kafka_topic, from_ms, to_ms, stats))
    raw = dedup_events(raw, stats)
    ds = build_dataset(raw, conversion, noise_config)
    if len(set(ds.y.tolist())) < 2:
        raise ValueError(f"labels have one class only ({len(ds.y)} moments): no conversions of {conversion!r}?")

    split = split or ("session" if otto and not events and not kafka_topic else "time")
    if split == "time":
        train_idx, test_idx = time_split(ds.ts_ms, ds.groups, test_size)
        split_method = "time: sessions ordered by first event time, the latest held out (models.training_data.time_split)"
    elif split == "session":
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train_idx, test_idx = next(splitter.split(ds.X, ds.y, ds.groups))
        split_method = "GroupShuffleSplit by session_id"
    else:
        raise click.UsageError(f"--split must be time or session, got {split!r}")
    reasons = dict(OTTO_NOT_COMPARABLE) if otto else {}
    reasons.update({n: "excluded by the trainer (--exclude-feature)" for n in exclude})
    used, unused = learnable_features(ds.X[train_idx], reasons)
    cols = [FEATURE_NAMES.index(n) for n in used]
    X_train, X_test = ds.X[train_idx][:, cols], ds.X[test_idx][:, cols]
    y_train, y_test = ds.y[train_idx], ds.y[test_idx]
    model = fit_model(X_train, y_train, ds.groups[train_idx], seed)
    blob = export_onnx(model, len(used))
    p_sklearn = model.predict_proba(X_test.astype(np.float64))[:, 1]
    p_onnx = onnx_scores(blob, X_test)
    parity = float(np.max(np.abs(p_onnx.astype(np.float64) - p_sklearn))) if len(X_test) else 0.0

    version = version if version is not None else next_version(models_dir, name)
    out_dir = models_dir / name / str(version)
    if out_dir.exists() and not force:
        raise click.UsageError(f"{out_dir} exists (use --force to overwrite or choose --version)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(blob)

    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    spec = {f.name: f for f in FEATURES}
    lr_coefs = logistic_coefficients(model)
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "model_version": f"{name}/{version}",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "format": "onnx",
        "file": "model.onnx",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "opset": TARGET_OPSET,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [None, len(used)],
                  "meaning": "the features below, in this order, selected by name from udfs.features.FEATURES"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None],
                   "meaning": f"calibrated probability that a {' or '.join(CONVERSION_TYPES[conversion])} "
                              "event follows later in the session"},
        "features": [{"name": n, "dtype": "float32", "unit": spec[n].unit, "definition": spec[n].definition}
                     for n in used],
        "features_not_used": unused,
        "feature_definition": "udfs/features.py (FEATURES), computed by udfs.session.SessionState",
        "noise_config": dataclasses.asdict(noise_config),
        "label": {
            "conversion": conversion,
            "conversion_event_types": list(CONVERSION_TYPES[conversion]),
            "definition": "1 when an applied conversion event of the same session has a strictly later ts_ms "
                          "than the scored moment; one scored moment per applied event, features as of "
                          "that event (no look-ahead)",
        },
        "training_data": {
            "otto_files": [_file_info(p) for p in otto],
            "event_files": [_file_info(p) for p in events],
            "kafka": ({"topic": kafka_topic, "from_ms": from_ms, "to_ms": to_ms,
                       "timestamps": "Kafka record timestamps, [from_ms, to_ms)"} if kafka_topic else None),
            "reader_stats": stats,
            "events": ds.n_events,
            "sessions": ds.n_sessions,
            "scored_moments": int(len(ds.y)),
            "positive_rate": float(ds.y.mean()),
            "time_range": {"from_ms": int(ds.ts_ms.min()), "to_ms": int(ds.ts_ms.max()),
                           "from": _iso(int(ds.ts_ms.min())), "to": _iso(int(ds.ts_ms.max()))},
            "split": {"method": split_method, "test_size": test_size, "seed": seed,
                      "test_from_ms": int(ds.ts_ms[test_idx].min()) if len(test_idx) else None,
                      "train_sessions": int(len(set(ds.groups[train_idx]))),
                      "test_sessions": int(len(set(ds.groups[test_idx]))),
                      "train_moments": int(len(train_idx)), "test_moments": int(len(test_idx)),
                      "model_fit_on": "train part only (metrics below are of this exact model)"},
        },
        "model": {
            "family": "StandardScaler + LogisticRegression (L2, C=1) calibrated by CalibratedClassifierCV "
                      f"(sigmoid/Platt on out-of-fold decision values, {CALIBRATION_FOLDS} folds grouped by "
                      "session, ensemble=False); exported as one logistic regression with the sigmoid folded in",
            "logistic_regression_standardized": lr_coefs,
        },
        "metrics": {"held_out": metrics(y_test, p_sklearn, float(y_train.mean())), "train": metrics(y_train, model.predict_proba(
            X_train.astype(np.float64))[:, 1])},
        "parity": {"max_abs_diff_onnxruntime_vs_sklearn_held_out": parity, "rows": int(len(X_test))},
        "score_quantiles": {"source": f"onnxruntime scores of the {len(X_test)} held-out moments ({split} split)",
                            "levels": list(QUANTILE_LEVELS),
                            "values": [float(v) for v in np.quantile(p_onnx.astype(np.float64), QUANTILE_LEVELS)]},
        "software": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                     "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
    }
    (out_dir / "README.md").write_text(render_readme(manifest))
    # manifest last and atomically: a running job's ReloadingScorer sees a complete version or none
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=True) + "\n")
    tmp.replace(out_dir / "manifest.json")
    return manifest


@click.command("train")
@click.option("--otto", "otto", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="OTTO sessions JSONL file or folder (repeatable)")
@click.option("--events", "events", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL file of contract events, e.g. a dump of signals.raw (repeatable)")
@click.option("--kafka-topic", default=None, help="read contract events from this topic (e.g. signals.raw)")
@click.option("--kafka-bootstrap", default=None, help="host:port (default $INTENTFLOW_KAFKA_BOOTSTRAP or the local stack)")
@click.option("--from-ms", type=int, default=None, help="first Kafka record timestamp, epoch ms (default: topic start)")
@click.option("--to-ms", type=int, default=None, help="end (exclusive) Kafka record timestamp, epoch ms (default: now)")
@click.option("--conversion", type=click.Choice(sorted(CONVERSION_TYPES)), default="add_to_cart", show_default=True,
              help="which events count as conversion for the label")
@click.option("--name", default="intent-lr", show_default=True, help="model name (folder under --models-dir)")
@click.option("--version", type=int, default=None, help="version number (default: next free)")
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=MODELS_DIR, show_default=True)
@click.option("--test-size", type=float, default=DEFAULT_TEST_SIZE, show_default=True, help="held-out share of sessions")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", type=click.Choice(["time", "session"]), default=None,
              help="held-out part: the latest sessions (time) or random ones (session) [default: session for --otto "
                   "alone, else time]")
@click.option("--exclude-feature", "exclude", multiple=True, help="leave a feature out of the model (repeatable)")
@click.option("--force", is_flag=True, help="overwrite an existing version folder")
def train_cmd(otto, events, kafka_topic, kafka_bootstrap, from_ms, to_ms, conversion, name, version, models_dir,
              test_size, seed, split, exclude, force) -> None:
    """Replay recorded events through the session feature code, train, calibrate and export ONNX."""
    m = train(otto=otto, events=events, kafka_topic=kafka_topic, kafka_bootstrap=kafka_bootstrap, from_ms=from_ms,
              to_ms=to_ms, conversion=conversion, name=name, version=version, models_dir=models_dir,
              test_size=test_size, seed=seed, exclude=exclude, force=force, split=split)
    held = m["metrics"]["held_out"]
    click.echo(f"wrote {models_dir / name / str(m['version'])}: {m['model_version']}, "
               f"{len(m['features'])} features ({', '.join(f['name'] for f in m['features'])})")
    click.echo(f"held out: n={held['n']} pos={held['positives']} ROC-AUC={held['roc_auc']:.3f} "
               f"PR-AUC={held['pr_auc']:.3f} Brier={held['brier']:.4f} (base rate {held['brier_of_base_rate']:.4f}); "
               f"onnx parity {m['parity']['max_abs_diff_onnxruntime_vs_sklearn_held_out']:.1e}")


if __name__ == "__main__":
    train_cmd()
