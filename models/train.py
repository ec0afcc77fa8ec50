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
5. splits by session (``GroupShuffleSplit``, no session on both sides), fits
   ``StandardScaler + LogisticRegression`` calibrated with ``CalibratedClassifierCV`` (sigmoid, folds
   grouped by session) on the training part, measures the held-out part, exports ONNX with skl2onnx
   without ZipMap and with a single ``float32[N]`` output ``intent_score``, checks onnxruntime against
   scikit-learn on the held-out rows, and writes ``<models-dir>/<name>/<version>/`` with
   ``model.onnx``, ``manifest.json`` and ``README.md``.

Training-only module: imports scikit-learn, skl2onnx and onnx; the job never imports it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson

from udfs.datasets import data_dir
from udfs.features import FEATURE_NAMES, FEATURES, N_FEATURES
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig
from udfs.session import replay_session

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"

#: Conversion event types per ``--conversion`` choice.
CONVERSION_TYPES: dict[str, tuple[str, ...]] = {
    "add_to_cart": ("add_to_cart",),
    "purchase": ("purchase",),
    "any": ("add_to_cart", "purchase"),
}

#: Features whose meaning in OTTO-derived events differs from the live stream, left out of any model
#: trained with ``--otto`` (train/serve skew), with the reason recorded in the manifest. OTTO has only
#: item page views, carts and orders; udfs.datasets.otto emits a synthetic product-card click per view.
OTTO_NOT_COMPARABLE: dict[str, str] = {
    "event_count": "OTTO events are only page views (+ one synthetic click each), carts and orders; live "
                   "sessions also count scroll, hover, trajectory, visibility and form events, so the scale differs",
    "time_since_last_event_s": "in OTTO the gap between item page views; live the gap between any two "
                               "behavioral events (scrolls, hovers), a different quantity",
    "click_count": "OTTO has no UI clicks: the converter emits one synthetic product-card click per page view, "
                   "so in this data it duplicates the page view count",
    "click_velocity_per_min": "same as click_count: synthetic clicks, one per OTTO page view",
}

INPUT_NAME = "features"
OUTPUT_NAME = "intent_score"

#: Held-out share of sessions. 0.3: our choice; with the ~140 OTTO sample sessions a smaller test part
#: holds too few converting sessions for a stable ROC-AUC.
DEFAULT_TEST_SIZE = 0.3

#: Folds of the calibration (grouped by session). 3: our choice, the OTTO sample has few converting
#: sessions per fold.
CALIBRATION_FOLDS = 3

#: ONNX opset of the export. 17: supported by skl2onnx 1.20 and onnxruntime 1.32.
TARGET_OPSET = 17


# -- data --------------------------------------------------------------------------------------------

def read_jsonl_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """Contract events from a JSONL file (one event object per line; blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        orjson.JSONDecodeError: a line is not JSON.
    """
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def dedup_events(events: Iterable[dict[str, Any]], stats: dict | None = None) -> list[dict[str, Any]]:
    """Events with duplicate ``event_id`` removed (first kept), order kept."""
    seen: set[str] = set()
    out = []
    for event in events:
        eid = event.get("event_id")
        if eid is not None:
            if eid in seen:
                if stats is not None:
                    stats["duplicates_dropped"] = stats.get("duplicates_dropped", 0) + 1
                continue
            seen.add(eid)
        out.append(event)
    return out


def read_kafka_events(bootstrap: str, topic: str, from_ms: int | None, to_ms: int | None,
                      stats: dict | None = None, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Contract events of ``topic`` whose Kafka record timestamp is in ``[from_ms, to_ms)``.

    Seeks every partition with ``offsets_for_times(from_ms)`` and reads up to the end offsets taken at
    the start (a bounded read of a live topic). Values are parsed with :func:`udfs.contract.parse_event`;
    unparseable records are counted in ``stats["kafka_records_invalid"]`` and skipped (they are in the DLQ
    of the live job already).

    Raises:
        kafka.errors.KafkaError: the broker is unreachable.
        TimeoutError: no progress for ``timeout_s`` before the end offsets were reached.
    """
    import time

    from kafka import KafkaConsumer, TopicPartition

    from udfs.contract import ContractError, parse_event

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise click.UsageError(f"topic {topic!r} not found on {bootstrap}")
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        if from_ms is None:
            consumer.seek_to_beginning(*partitions)
        else:
            starts = consumer.offsets_for_times({tp: from_ms for tp in partitions})
            for tp in partitions:
                found = starts.get(tp)
                consumer.seek(tp, found.offset if found is not None else end[tp])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            if batch:
                deadline = time.monotonic() + timeout_s
            elif time.monotonic() > deadline:
                raise TimeoutError(f"no progress reading {topic} for {timeout_s} s")
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp] or (to_ms is not None and record.timestamp >= to_ms):
                        continue
                    try:
                        out.append(parse_event(record.value))
                    except ContractError:
                        if stats is not None:
                            stats["kafka_records_invalid"] = stats.get("kafka_records_invalid", 0) + 1
        if stats is not None:
            stats["kafka_records_read"] = len(out)
        return out
    finally:
        consumer.close()


@dataclass
class Dataset:
    """Scored moments: one row per applied event.

    Attributes:
        X: ``float32[n, N_FEATURES]`` features as of each moment (FEATURES order).
        y: ``int8[n]`` 1 when a conversion of the session follows (strictly later ``ts_ms``).
        groups: ``[n]`` session id of each row (for session-grouped splits).
        ts_ms: ``int64[n]`` event time of each moment.
        n_events / n_sessions: events read and sessions replayed.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    ts_ms: np.ndarray
    n_events: int
    n_sessions: int


def label_later_conversion(ts_ms: np.ndarray, conversion_ts_ms: Iterable[int]) -> np.ndarray:
    """``int8`` labels: 1 where some conversion time is strictly greater than the moment's ``ts_ms``.

    Args:
        ts_ms: event times of the scored moments (any order), int64.
        conversion_ts_ms: event times of the session's conversion events.
    """
    conv = list(conversion_ts_ms)
    if not conv:
        return np.zeros(len(ts_ms), dtype=np.int8)
    return (np.asarray(ts_ms, dtype=np.int64) < max(conv)).astype(np.int8)


def build_dataset(events: Iterable[dict[str, Any]], conversion: str = "add_to_cart",
                  noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG) -> Dataset:
    """Replay events per session through :mod:`udfs.session` and label each applied event.

    Raises:
        KeyError: unknown ``conversion`` (see :data:`CONVERSION_TYPES`).
    """
    conversion_types = CONVERSION_TYPES[conversion]
    by_session: dict[str, list[dict[str, Any]]] = {}
    n_events = 0
    for event in events:
        by_session.setdefault(event["session_id"], []).append(event)
        n_events += 1
    xs, ys, groups, times = [], [], [], []
    from tqdm import tqdm  # noqa: PLC0415 - progress on a terminal only (disable=None: off when not a TTY)

    for session_id, session_events in tqdm(by_session.items(), total=len(by_session), unit="session",
                                           desc="features per session", disable=None, leave=False):
        ordered, feats, outcomes = replay_session(session_events, noise_config)
        applied = np.array([o.applied for o in outcomes], dtype=bool)
        if not applied.any():
            continue
        ts = np.array([e["ts_ms"] for e in ordered], dtype=np.int64)
        conv_ts = [e["ts_ms"] for e, ok in zip(ordered, applied) if ok and e["type"] in conversion_types]
        xs.append(feats[applied])
        ys.append(label_later_conversion(ts[applied], conv_ts))
        times.append(ts[applied])
        groups.extend([session_id] * int(applied.sum()))
    if not xs:
        empty = np.empty((0, N_FEATURES), dtype=np.float32)
        return Dataset(empty, np.empty(0, np.int8), np.empty(0, object), np.empty(0, np.int64), n_events, 0)
    return Dataset(np.concatenate(xs), np.concatenate(ys), np.array(groups, dtype=object),
                   np.concatenate(times), n_events, len(by_session))


def learnable_features(X: np.ndarray, exclude: dict[str, str] | Iterable[str] = ()
                       ) -> tuple[list[str], list[dict[str, str]]]:
    """Split FEATURES into those the data can teach and the rest, with the reason for each left out.

    A feature is left out when it is excluded by the caller (``exclude``: names, or ``{name: reason}``),
    when it is constant in ``X`` (nothing to learn), or when its column equals that of a feature
    already kept (its own effect cannot be told apart; e.g. every OTTO page is a product page, so
    ``page_view_count`` equals ``product_view_count`` there).

    Returns:
        ``(used names in FEATURES order, [{"name", "reason"}, ...] for the unused)``.
    """
    reasons = dict(exclude) if isinstance(exclude, dict) else {n: "excluded by the trainer (--exclude-feature)"
                                                               for n in exclude}
    used: list[str] = []
    unused: list[dict[str, str]] = []
    for j, name in enumerate(FEATURE_NAMES):
        column = X[:, j]
        if name in reasons:
            unused.append({"name": name, "reason": reasons[name]})
        elif len(X) == 0 or np.all(column == column[0]):
            value = float(column[0]) if len(X) else 0.0
            unused.append({"name": name, "reason": f"constant ({value:g}) in the training data: not learnable "
                                                   "from it, so not an input of this model"})
        else:
            twin = next((u for u in used if np.array_equal(X[:, FEATURE_NAMES.index(u)], column)), None)
            if twin is not None:
                unused.append({"name": name, "reason": f"identical to {twin} in every training row: its own "
                                                       "effect cannot be learned from this data"})
            else:
                used.append(name)
    return used, unused


# -- model -------------------------------------------------------------------------------------------

def make_estimator(cv, seed: int = 0, class_weight: str | None = None):
    """``CalibratedClassifierCV(StandardScaler + LogisticRegression, sigmoid, ensemble=False)`` with folds ``cv``.

    ``ensemble=False``: one scaled logistic regression fit on all rows, and one Platt sigmoid fit on
    its out-of-fold decision values. Platt's sigmoid of a linear decision function is again a
    logistic regression, so :func:`fold_calibration` turns the pair into ONE exportable
    ``StandardScaler + LogisticRegression`` with the same probabilities.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight=class_weight,
                                                              random_state=seed))
    return CalibratedClassifierCV(base, method="sigmoid", cv=cv, ensemble=False)


def fold_calibration(calibrated):
    """One ``Pipeline(StandardScaler, LogisticRegression)`` equal to a fitted sigmoid-calibrated one.

    The calibrated probability is ``expit(-(a * (w.z + c) + b))`` (scikit-learn's ``_SigmoidCalibration``
    on the decision function ``w.z + c`` of the standardized input ``z``), i.e. a logistic regression with
    weights ``-a * w`` and intercept ``-a * c - b``.

    Raises:
        ValueError: ``calibrated`` is not a fitted ``ensemble=False`` sigmoid calibration of a
            scaler + logistic-regression pipeline.
    """
    import copy

    from sklearn.pipeline import Pipeline

    ccs = getattr(calibrated, "calibrated_classifiers_", None)
    if not ccs or len(ccs) != 1 or len(ccs[0].calibrators) != 1:
        raise ValueError("expected a fitted CalibratedClassifierCV(ensemble=False) of a binary classifier")
    pipe = ccs[0].estimator
    scaler, lr = pipe.steps[0][1], pipe.steps[-1][1]
    cal = ccs[0].calibrators[0]
    if not hasattr(cal, "a_"):
        raise ValueError("only sigmoid calibration can be folded into the logistic regression")
    folded = copy.deepcopy(lr)
    folded.coef_ = -cal.a_ * lr.coef_
    folded.intercept_ = -cal.a_ * lr.intercept_ - cal.b_
    return Pipeline([("scale", copy.deepcopy(scaler)), ("logreg", folded)])


def grouped_folds(y: np.ndarray, groups: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Session-grouped stratified folds as explicit index pairs (every fold has both classes).

    Raises:
        ValueError: fewer groups per class than folds (too little data to calibrate).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    folds = list(StratifiedGroupKFold(n_splits=n_splits).split(np.zeros(len(y)), y, groups))
    for train_idx, test_idx in folds:
        if len(set(y[train_idx])) < 2 or len(set(y[test_idx])) < 2:
            raise ValueError("a calibration fold has a single class: too few converting sessions")
    return folds


def fit_model(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0,
              calibration_folds: int = CALIBRATION_FOLDS):
    """Fit the calibrated scaled logistic regression on ``X`` (float32, used columns only)."""
    model = make_estimator(grouped_folds(y, groups, calibration_folds), seed)
    model.fit(X.astype(np.float64), y)
    return model


def export_onnx(model, n_inputs: int) -> bytes:
    """skl2onnx export without ZipMap, reduced to one output ``intent_score`` = P(class 1), ``float32[N]``.

    Args:
        model: a fitted sigmoid-calibrated model (:func:`make_estimator`; folded first by
            :func:`fold_calibration`, because skl2onnx 1.20 calibrates the base pipeline's
            probabilities where scikit-learn 1.9 calibrates its decision function: measured 0.39 apart)
            or a plain fitted classifier pipeline.
        n_inputs: number of input columns.

    The input is ``features: float32[N, n_inputs]``.
    """
    if hasattr(model, "calibrated_classifiers_"):
        model = fold_calibration(model)
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn

    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_inputs]))],
                          options={id(model): {"zipmap": False}}, target_opset=TARGET_OPSET)
    prob_name = next(o.name for o in onx.graph.output if o.name.startswith("prob"))
    graph = onx.graph
    graph.initializer.append(helper.make_tensor("positive_class_index", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", [prob_name, "positive_class_index"], [OUTPUT_NAME], axis=1,
                                       name="select_positive_class"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
    onx = onnx.utils.Extractor(onx).extract_model([INPUT_NAME], [OUTPUT_NAME])
    onx.producer_name = "intentflow models/train.py (skl2onnx)"
    onx.graph.name = "intentflow_intent_score"  # the extractor names it with a random id: same bytes per fit
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def onnx_scores(blob: bytes, X: np.ndarray) -> np.ndarray:
    """Scores of ``X`` (used columns) by the ONNX model ``blob``, with the job's session options."""
    import onnxruntime as ort

    from udfs.scoring import session_options

    sess = ort.InferenceSession(blob, sess_options=session_options(), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0]


def metrics(y: np.ndarray, p: np.ndarray, train_rate: float | None = None) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier, log loss, F1 at 0.5, and counts.

    ``brier_of_base_rate`` is the Brier score of the constant prediction ``train_rate`` (the training
    part's positive rate: the honest no-skill baseline; ``y``'s own rate when None).
    """
    rate = float(y.mean()) if train_rate is None else float(train_rate)
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss, roc_auc_score

    both = len(set(y.tolist())) == 2
    return {
        "n": int(len(y)),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()) if len(y) else 0.0,
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "brier_of_base_rate": float(brier_score_loss(y, np.full(len(y), rate))),
        "base_rate": rate,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "f1_at_0_5": float(f1_score(y, (p >= 0.5).astype(int), zero_division=0)),
    }


# -- the command -------------------------------------------------------------------------------------



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


def next_version(models_dir: Path, name: str) -> int:
    """1 + the highest integer version folder of ``name`` (1 when none)."""
    base = models_dir / name
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def train(*, otto: Iterable[Path] = (), events: Iterable[Path] = (), kafka_topic: str | None = None,
          kafka_bootstrap: str | None = None, from_ms: int | None = None, to_ms: int | None = None,
          conversion: str = "add_to_cart",
          name: str = "intent-lr", version: int | None = None, models_dir: Path = MODELS_DIR,
          test_size: float = DEFAULT_TEST_SIZE, seed: int = 0, exclude: Iterable[str] = (),
          force: bool = False, noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG) -> dict[str, Any]:
    """Run the whole training (see the module docstring); return the manifest written.

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

    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, test_idx = next(splitter.split(ds.X, ds.y, ds.groups))
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
    lr_coefs = _logistic_coefficients(model)
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
            "split": {"method": "GroupShuffleSplit by session_id", "test_size": test_size, "seed": seed,
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


def _logistic_coefficients(model) -> dict[str, Any]:
    """Coefficients of the exported (calibration-folded) logistic regression, on standardized inputs."""
    pipe = fold_calibration(model)
    scaler, folded = pipe.steps[0][1], pipe.steps[-1][1]
    cal = model.calibrated_classifiers_[0].calibrators[0]
    return {"coef": [float(c) for c in folded.coef_[0]], "intercept": float(folded.intercept_[0]),
            "scaler_mean": [float(v) for v in scaler.mean_], "scaler_scale": [float(v) for v in scaler.scale_],
            "platt_a": float(cal.a_), "platt_b": float(cal.b_),
            "formula": "intent_score = 1 / (1 + exp(-(coef . ((x - scaler_mean) / scaler_scale) + intercept)))"}


def render_readme(m: dict[str, Any]) -> str:
    """README of one model version, generated from its manifest."""
    td, held = m["training_data"], m["metrics"]["held_out"]
    used = "\n".join(f"| `{f['name']}` | {f['unit']} | {c:+.3f} |" for f, c in
                     zip(m["features"], m["model"]["logistic_regression_standardized"]["coef"]))
    unused = "\n".join(f"- `{f['name']}`: {f['reason']}" for f in m["features_not_used"])
    files = ", ".join(f"`{Path(f['path']).name}` (sha256 `{f['sha256'][:12]}…`)"
                      for f in td["otto_files"] + td["event_files"])
    if td.get("kafka"):
        k = td["kafka"]
        files = ", ".join(x for x in (files, f"Kafka topic `{k['topic']}` records [{k['from_ms']}, {k['to_ms']})") if x)
    return f"""# {m['model_version']}

Generated by `intentflow train` (models/train.py) on {m['created_at']}. Do not edit; retrain instead.

**What it predicts**: {m['output']['meaning']} (`{m['output']['name']}`, float32[N]).
Label: {m['label']['definition']}.

**Trained on**: {files}: {td['events']} events in {td['sessions']} sessions, {td['scored_moments']} scored
moments ({td['positive_rate']:.1%} positive), event time {td['time_range']['from']} to {td['time_range']['to']}.
Split by session: {td['split']['train_sessions']} sessions to train, {td['split']['test_sessions']} held out;
the model was fit on the training part only.

**Model**: {m['model']['family']}. ONNX opset {m['opset']}, input `{m['input']['name']}` float32[N, {len(m['features'])}],
sha256 `{m['sha256']}`.

## Held-out metrics ({held['n']} moments, {held['positives']} positive)

| ROC-AUC | PR-AUC | Brier | Brier of the training base rate | log loss | F1 at 0.5 |
|---|---|---|---|---|---|
| {held['roc_auc']:.3f} | {held['pr_auc']:.3f} | {held['brier']:.4f} | {held['brier_of_base_rate']:.4f} | {held['log_loss']:.4f} | {held['f1_at_0_5']:.3f} |

onnxruntime vs scikit-learn on the held-out rows: max |difference| = {m['parity']['max_abs_diff_onnxruntime_vs_sklearn_held_out']:.2e}.

## Features used (input order; coefficient of the exported, calibrated LR on standardized inputs)

| feature | unit | coefficient |
|---|---|---|
{used}

## Features of the job NOT used by this model

The job computes them (udfs/features.py), but the training data cannot teach them, so this model has
no weight for them (they are not among its inputs; the scorer selects the inputs above by name):

{unused}
"""


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
@click.option("--exclude-feature", "exclude", multiple=True, help="leave a feature out of the model (repeatable)")
@click.option("--force", is_flag=True, help="overwrite an existing version folder")
def train_cmd(otto, events, kafka_topic, kafka_bootstrap, from_ms, to_ms, conversion, name, version, models_dir,
              test_size, seed, exclude, force) -> None:
    """Replay recorded events through the session feature code, train, calibrate and export ONNX."""
    m = train(otto=otto, events=events, kafka_topic=kafka_topic, kafka_bootstrap=kafka_bootstrap, from_ms=from_ms,
              to_ms=to_ms, conversion=conversion, name=name, version=version, models_dir=models_dir,
              test_size=test_size, seed=seed, exclude=exclude, force=force)
    held = m["metrics"]["held_out"]
    click.echo(f"wrote {models_dir / name / str(m['version'])}: {m['model_version']}, "
               f"{len(m['features'])} features ({', '.join(f['name'] for f in m['features'])})")
    click.echo(f"held out: n={held['n']} pos={held['positives']} ROC-AUC={held['roc_auc']:.3f} "
               f"PR-AUC={held['pr_auc']:.3f} Brier={held['brier']:.4f} (base rate {held['brier_of_base_rate']:.4f}); "
               f"onnx parity {m['parity']['max_abs_diff_onnxruntime_vs_sklearn_held_out']:.1e}")


if __name__ == "__main__":
    train_cmd()
