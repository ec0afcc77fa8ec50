"""models/train.py, models/training_data.py, models/fit.py, models/export.py: labels without look-ahead,
feature selection, calibration folding, end-to-end export."""
from __future__ import annotations

import hashlib
import json
import random

import click
import numpy as np
import orjson
import pytest

from models import export, fit, training_data  # noqa: E402  (scikit-learn: the train extra, installed by make setup)
from models import train as T  # noqa: E402
from udfs.contract import make_event  # noqa: E402
from udfs.features import FEATURE_NAMES, N_FEATURES  # noqa: E402
from udfs.scoring import IntentScorer  # noqa: E402
from udfs.session import replay_session  # noqa: E402

T0 = 1_764_500_000_000


def ev(kind, session, dt_ms, n, **props):
    return make_event(kind, session_id=session, client_ts_ms=T0 + dt_ms, source_key=f"tt:{session}:{n}", seq=n,
                      page={"path": "/p", "item_id": props.pop("item", "i1")}, props=props or None)


def synthetic_sessions(n_sessions: int, seed: int = 0) -> list[dict]:
    """Sessions where long product-card hovers make a later add_to_cart likely."""
    rng = random.Random(seed)
    events = []
    for k in range(n_sessions):
        s, t, n = f"s{k}", 0, 0
        engaged = rng.random() < 0.5
        for j in range(rng.randint(3, 8)):
            t += rng.randint(500, 5_000)
            kind = "hover" if j == 0 else rng.choice(["page_view", "hover", "scroll"])
            props = {"page_view": {"item": f"i{rng.randint(0, 5)}"},
                     "hover": {"element_id": "card", "element_role": "product_card",
                               "hover_ms": rng.randint(1500, 6000) if engaged else rng.randint(100, 800)},
                     "scroll": {"scroll_depth_pct": rng.uniform(0, 100)}}[kind]
            events.append(ev(kind, s, t, n, **props))
            n += 1
        if rng.random() < (0.8 if engaged else 0.1):
            events.append(ev("add_to_cart", s, t + 1_000, n, item_id="i1", quantity=1))
    return events


def test_label_is_strictly_later_conversion():
    ts = np.array([10, 20, 30, 40])
    assert training_data.label_later_conversion(ts, [30]).tolist() == [1, 1, 0, 0]  # same ms is not later
    assert training_data.label_later_conversion(ts, []).tolist() == [0, 0, 0, 0]


def test_build_dataset_labels_and_no_look_ahead():
    events = [ev("page_view", "a", 0, 0), ev("hover", "a", 1_000, 1, element_id="c", element_role="product_card",
                                              hover_ms=3000),
              ev("add_to_cart", "a", 2_000, 2, item_id="i1", quantity=1), ev("page_view", "a", 3_000, 3),
              ev("hover", "a", 3_500, 4, element_id="c", element_role="product_card", hover_ms=20),  # suppressed
              ev("page_view", "b", 0, 0)]
    ds = training_data.build_dataset(events, "add_to_cart")
    assert ds.n_sessions == 2 and ds.X.shape == (5, N_FEATURES)  # the suppressed hover is no moment
    assert ds.y.tolist() == [1, 1, 0, 0, 0]
    ordered, feats, _ = replay_session([e for e in events if e["session_id"] == "a"][:2])
    np.testing.assert_array_equal(ds.X[1], feats[-1])  # moment 1 knows nothing of the cart after it
    assert ds.X[1][FEATURE_NAMES.index("add_to_cart_count")] == 0
    assert training_data.build_dataset(events, "purchase").y.sum() == 0


def test_learnable_features_reasons():
    X = np.zeros((4, N_FEATURES), np.float32)
    i, j, k = (FEATURE_NAMES.index(n) for n in ("session_age_s", "page_view_count", "product_view_count"))
    X[:, i] = [1, 2, 3, 4]
    X[:, j] = [1, 1, 2, 3]
    X[:, k] = X[:, j]
    used, unused = training_data.learnable_features(X, {"session_age_s": "skewed"})
    assert used == ["page_view_count"]
    why = {u["name"]: u["reason"] for u in unused}
    assert why["session_age_s"] == "skewed" and "identical to page_view_count" in why["product_view_count"]
    assert why["hover_ms_spec"].startswith("constant")
    assert len(used) + len(unused) == N_FEATURES


def test_fold_calibration_equals_calibrated_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 0.5).astype(int)
    groups = np.arange(300) // 2
    model = fit.fit_model(X, y, groups)
    folded = fit.fold_calibration(model)
    np.testing.assert_allclose(folded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)


def test_train_end_to_end_from_jsonl(tmp_path):
    src = tmp_path / "events.jsonl"
    events = synthetic_sessions(120)
    src.write_bytes(b"\n".join(orjson.dumps(e) for e in events + events[:5]))  # 5 retried duplicates
    m = T.train(events=[src], models_dir=tmp_path / "models", name="intent-t", seed=0)
    d = tmp_path / "models" / "intent-t" / "1"
    blob = (d / "model.onnx").read_bytes()
    on_disk = json.loads((d / "manifest.json").read_text())
    assert on_disk["sha256"] == hashlib.sha256(blob).hexdigest() == m["sha256"]
    assert on_disk["model_version"] == "intent-t/1" and on_disk["training_data"]["reader_stats"]["duplicates_dropped"] == 5
    used = [f["name"] for f in on_disk["features"]]
    assert "hover_ms_total" in used and "form_interaction_count" not in used
    why = {u["name"]: u["reason"] for u in on_disk["features_not_used"]}
    assert "identical to hover_ms_total" in why["hover_ms_product_card"]  # only card hovers in this data
    assert on_disk["parity"]["max_abs_diff_onnxruntime_vs_sklearn_held_out"] < 1e-6
    assert on_disk["metrics"]["held_out"]["roc_auc"] > 0.7  # the planted signal is learned
    tr = on_disk["training_data"]["time_range"]
    assert tr["from_ms"] == min(e["ts_ms"] for e in events) and tr["to_ms"] == max(e["ts_ms"] for e in events)
    assert "intent-t/1" in (d / "README.md").read_text()
    split = on_disk["training_data"]["split"]  # own events: the latest sessions are held out
    assert split["method"].startswith("time") and split["test_from_ms"] >= min(e["ts_ms"] for e in events)
    q = on_disk["score_quantiles"]
    assert len(q["levels"]) == len(q["values"]) == 101 and q["values"] == sorted(q["values"])
    from udfs.thresholds import ScoreQuantiles

    assert ScoreQuantiles.from_manifest(on_disk).model_version == "intent-t/1"  # rules can read them
    scorer = IntentScorer(d)
    assert scorer.features == tuple(used)
    with pytest.raises(click.UsageError, match="exists"):
        T.train(events=[src], models_dir=tmp_path / "models", name="intent-t", version=1)
    assert export.next_version(tmp_path / "models", "intent-t") == 2


def test_train_refuses_single_class(tmp_path):
    src = tmp_path / "e.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(ev("page_view", f"s{i}", i, 0)) for i in range(10)))
    with pytest.raises(ValueError, match="one class"):
        T.train(events=[src], models_dir=tmp_path)


def test_time_split_holds_out_the_latest_sessions_whole():
    from models.training_data import time_split

    # sessions a..e start at 50, 10, 40, 20, 30; moments interleaved in time
    groups = np.array(["a", "b", "c", "d", "e", "a", "b", "e", "c", "d"], dtype=object)
    ts = np.array([50, 10, 40, 20, 30, 90, 15, 95, 41, 200], dtype=np.int64)
    train_idx, test_idx = time_split(ts, groups, 0.4)
    assert set(groups[test_idx]) == {"c", "a"} and set(groups[train_idx]) == {"b", "d", "e"}
    assert sorted(train_idx.tolist() + test_idx.tolist()) == list(range(len(ts)))
    first = {g: ts[groups == g].min() for g in set(groups.tolist())}
    assert min(first[g] for g in groups[test_idx]) >= max(first[g] for g in groups[train_idx])
    _, one = time_split(ts, groups, 0.01)
    assert set(groups[one]) == {"a"}  # at least one session held out
    with pytest.raises(ValueError, match="test_size"):
        time_split(ts, groups, 1.0)
    with pytest.raises(ValueError, match="at least 2 sessions"):
        time_split(ts[:1], groups[:1], 0.5)
