"""udfs.scoring: manifest loading, sha256, feature selection by name, parity with scikit-learn, reload."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from udfs.features import FEATURE_NAMES, N_FEATURES, feature_indices
from udfs.scoring import IntentScorer, ModelError, ModelManifest, ModelRegistry, ReloadingScorer

ROOT = Path(__file__).resolve().parents[2]
#: A subset in an order different from FEATURES, so a wrong column selection cannot pass.
USED = ["add_to_cart_count", "session_age_s", "hover_ms_spec", "click_count", "max_scroll_depth_pct"]


def synthetic(n: int, seed: int):
    """Full feature vectors (random), label from a logistic model of the USED columns."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 3.0, size=(n, N_FEATURES)).astype(np.float32)
    z = X[:, feature_indices(USED)]
    logit = 0.4 * z[:, 0] - 0.1 * z[:, 1] + 0.3 * z[:, 2] - 0.5 * z[:, 3] + 0.2 * z[:, 4] - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    groups = np.arange(n) // 3  # three rows per "session"
    return X, y, groups


@pytest.fixture(scope="module")
def trained():
    """A calibrated model fit on 600 synthetic rows and exported like models/train.py does."""
    from models.export import export_onnx
    from models.fit import fit_model

    X, y, groups = synthetic(800, seed=1)
    cols = feature_indices(USED)
    model = fit_model(X[:600][:, cols], y[:600], groups[:600])
    return model, export_onnx(model, len(USED)), X[600:], cols


def write_version(root: Path, version: int, blob: bytes, features=USED, sha: str | None = None,
                  name: str = "intent-test") -> Path:
    d = root / name / str(version)
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").write_bytes(blob)
    manifest = {"name": name, "version": version, "file": "model.onnx",
                "sha256": sha or hashlib.sha256(blob).hexdigest(), "features": [{"name": f} for f in features],
                "input": {"name": "features"}, "output": {"name": "intent_score"}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_onnxruntime_equals_sklearn_within_1e6_on_held_out(trained, tmp_path):
    model, blob, X_held, cols = trained
    scorer = IntentScorer(write_version(tmp_path, 1, blob))
    ours = scorer.score(X_held)  # full vectors: the scorer selects USED by name
    theirs = model.predict_proba(X_held[:, cols].astype(np.float64))[:, 1]
    assert ours.dtype == np.float32 and ours.shape == (len(X_held),)
    assert np.max(np.abs(ours.astype(np.float64) - theirs)) < 1e-6
    assert 0.05 < theirs.std()  # the comparison is not between two constants
    assert scorer.model_version == "intent-test/1"
    assert scorer.score_one(X_held[0]) == pytest.approx(float(ours[0]), abs=1e-7)


def test_batch_equals_one_by_one(trained, tmp_path):
    _, blob, X_held, _ = trained
    scorer = IntentScorer(write_version(tmp_path, 1, blob))
    batch = scorer.score(X_held[:64])
    singles = np.array([scorer.score(X_held[i:i + 1])[0] for i in range(64)])
    np.testing.assert_allclose(batch, singles, rtol=0, atol=1e-7)


def test_shape_checks_and_empty_batch(trained, tmp_path):
    _, blob, X_held, _ = trained
    scorer = IntentScorer(write_version(tmp_path, 1, blob))
    assert scorer.score(np.empty((0, N_FEATURES), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match=rf"shape \(N, {N_FEATURES}\), got \(200, 5\)"):
        scorer.score(X_held[:, :len(USED)])
    with pytest.raises(ValueError, match=rf"shape \(N, {N_FEATURES}\), got \({N_FEATURES},\)"):
        scorer.score(X_held[0])


def test_sha256_mismatch_is_refused(trained, tmp_path):
    _, blob, _, _ = trained
    with pytest.raises(ModelError, match="sha256"):
        IntentScorer(write_version(tmp_path, 1, blob, sha="0" * 64))


def test_manifest_feature_count_or_unknown_name_is_refused(trained, tmp_path):
    _, blob, _, _ = trained
    with pytest.raises(ModelError, match="input"):
        IntentScorer(write_version(tmp_path, 1, blob, features=USED[:-1]))
    with pytest.raises(ModelError, match="no_such"):
        ModelManifest.load(write_version(tmp_path, 2, blob, features=USED[:-1] + ["no_such"]))


def test_registry_latest_and_reload_without_restart(trained, tmp_path):
    _, blob, X_held, _ = trained
    write_version(tmp_path, 1, blob)
    registry = ModelRegistry(tmp_path)
    now = [0.0]
    scorer = ReloadingScorer("intent-test", registry, check_interval_s=5.0, clock=lambda: now[0])
    assert scorer.model_version == "intent-test/1"
    write_version(tmp_path, 2, blob)
    _, version = scorer.score_with_version(X_held[:2])
    assert version == "intent-test/1"  # not checked before the interval
    now[0] = 6.0
    scores, version = scorer.score_with_version(X_held[:2])
    assert version == "intent-test/2" and scorer.reloads == 1 and scores.shape == (2,)
    assert registry.versions("intent-test") == [1, 2] and registry.latest("intent-test").version == 2
    write_version(tmp_path, 3, blob, sha="f" * 64)  # broken: keeps scoring with version 2
    now[0] = 12.0
    assert scorer.maybe_reload() is False and scorer.model_version == "intent-test/2"


def test_uci_model_accounts_for_every_feature_and_records_its_score_quantiles():
    """intent-lr/2 (the newest version; intent-lr/1 stays in force, models/intent-lr/CURRENT): every feature of the job is an input or listed as not used, its
    ONNX scores probabilities through IntentScorer, and the manifest has the 101 quantiles of its validation
    scores that quantile thresholds of rules read."""
    scorer = ModelRegistry(ROOT / "models").load("intent-lr", 2)
    m = scorer.manifest.raw
    used = [f["name"] for f in m["features"]]
    unused = {f["name"] for f in m["features_not_used"]}
    assert len(used) == len(set(used)) and unused.isdisjoint(used) and unused | set(used) == set(FEATURE_NAMES)
    q = m["score_quantiles"]
    assert q["levels"][0] == 0.0 and q["levels"][-1] == 1.0 and len(q["values"]) == len(q["levels"]) == 101
    assert all(a <= b for a, b in zip(q["values"], q["values"][1:])) and 0.0 <= q["values"][0] < q["values"][-1] <= 1.0
    X, _, _ = synthetic(200, seed=5)
    scores = scorer.score(X)
    assert scores.shape == (200,) and np.all((scores >= 0) & (scores <= 1))


def test_first_shipped_model_matches_its_manifest_formula():
    """intent-lr/1 (OTTO, logistic regression): inputs are FEATURES names, and ONNX equals the manifest's
    logistic formula."""
    registry = ModelRegistry(ROOT / "models")
    scorer = registry.load("intent-lr", 1)
    m = scorer.manifest.raw
    used = [f["name"] for f in m["features"]]
    assert set(used) <= set(FEATURE_NAMES) and len(used) == len(set(used))
    unused = {f["name"] for f in m["features_not_used"]}
    assert unused.isdisjoint(used) and unused | set(used) <= set(FEATURE_NAMES)
    lr = m["model"]["logistic_regression_standardized"]
    X, _, _ = synthetic(200, seed=5)
    z = (X[:, feature_indices(used)].astype(np.float64) - lr["scaler_mean"]) / lr["scaler_scale"]
    expected = 1 / (1 + np.exp(-(z @ np.array(lr["coef"]) + lr["intercept"])))
    np.testing.assert_allclose(scorer.score(X), expected, rtol=0, atol=1e-6)


def test_scoring_and_session_do_not_import_sklearn_or_pyflink():
    code = ("import sys, udfs.scoring, udfs.session, udfs.noise, udfs.features; "
            "bad = [m for m in ('sklearn', 'pyflink', 'skl2onnx', 'onnx') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reload_retries_a_version_once_its_onnx_file_is_complete(trained, tmp_path):
    _, blob, X_held, _ = trained
    write_version(tmp_path, 1, blob)
    now = [0.0]
    scorer = ReloadingScorer("intent-test", ModelRegistry(tmp_path), check_interval_s=1.0, clock=lambda: now[0])
    d2 = write_version(tmp_path, 2, blob)
    (d2 / "model.onnx").write_bytes(blob[: len(blob) // 2])  # half-copied: sha256 mismatch
    now[0] = 2.0
    assert scorer.maybe_reload() is False and scorer.model_version == "intent-test/1"
    (d2 / "model.onnx").write_bytes(blob)  # copy completes; manifest unchanged
    now[0] = 4.0
    assert scorer.maybe_reload() is True and scorer.model_version == "intent-test/2"
