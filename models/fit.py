"""The model family and its fit: ``StandardScaler + LogisticRegression`` calibrated by
``CalibratedClassifierCV`` (sigmoid, folds grouped by session), the calibration folded into one logistic
regression for export, and the held-out metrics. Training-only: imports scikit-learn.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Folds of the calibration (grouped by session). 3: our choice, the OTTO sample has few converting
#: sessions per fold.
CALIBRATION_FOLDS = 3


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


def logistic_coefficients(model) -> dict[str, Any]:
    """Coefficients of the exported (calibration-folded) logistic regression, on standardized inputs."""
    pipe = fold_calibration(model)
    scaler, folded = pipe.steps[0][1], pipe.steps[-1][1]
    cal = model.calibrated_classifiers_[0].calibrators[0]
    return {"coef": [float(c) for c in folded.coef_[0]], "intercept": float(folded.intercept_[0]),
            "scaler_mean": [float(v) for v in scaler.mean_], "scaler_scale": [float(v) for v in scaler.scale_],
            "platt_a": float(cal.a_), "platt_b": float(cal.b_),
            "formula": "intent_score = 1 / (1 + exp(-(coef . ((x - scaler_mean) / scaler_scale) + intercept)))"}
