"""Evaluate the intent model family on a public benchmark: UCI "Online Shoppers Purchasing Intention".

``intentflow evaluate`` (this module's :data:`evaluate_cmd`) runs stratified 10-fold cross-validation
on ``$INTENTFLOW_DATA_DIR/online_shoppers_intention.csv`` (12,330 real sessions, label ``Revenue``;
Sakar et al. 2019) of the same model family the job ships (``StandardScaler + LogisticRegression``,
optionally sigmoid-calibrated), with and without ``PageValues``, and writes

* ``models/intent-lr/EVALUATION.md``: ROC-AUC, PR-AUC, F1 (at 0.5), Brier as mean ± std over the folds,
  next to the published figures (``shared/data/MANIFEST.md``);
* ``models/intent-lr/evaluation.json``: the same numbers, per fold;
* ``models/intent-lr/calibration.png``: reliability curves of the out-of-fold predictions.

``PageValues`` is computed by the analytics tool after the session from the pages that led to a
transaction, so it leaks the label: a real-time scorer must not use it. The rows with it are for
comparison with the published protocol only.

Quirks of the file, handled by stated rules (see :func:`load_online_shoppers`):

* 14 rows have the first 8 columns (page counts, durations, bounce and exit rates) blank: dropped
  (nothing to impute from; all 14 are ``Revenue = FALSE``; 0.11 % of the rows);
* 33 rows have ``-1`` in all three duration columns (the tool's "not measured"; all are one- or
  two-page visits with ``PageValues = 0``): set to 0 s, what the tool records for a visit with no
  second hit to time against;
* ``June`` beside the three-letter months: renamed ``Jun`` (only a category name).

Training-only module (pandas, scikit-learn, matplotlib).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from udfs.datasets import data_dir

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "models" / "intent-lr"
CSV_NAME = "online_shoppers_intention.csv"
#: md5 of the copy described in shared/data/MANIFEST.md (menaceonzenith/online-shoppers-intentions @ f522b86).
CSV_MD5 = "82907670f9e9af341ff9c4bef5de3abc"

COUNT_DURATION = ["Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
                  "ProductRelated", "ProductRelated_Duration"]
NUMERIC = COUNT_DURATION + ["BounceRates", "ExitRates", "SpecialDay"]
CATEGORICAL = ["Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType"]
DURATIONS = ["Administrative_Duration", "Informational_Duration", "ProductRelated_Duration"]
LABEL = "Revenue"

#: Published figures on the same file (shared/data/MANIFEST.md); different protocols, for comparison.
PUBLISHED = [
    ("logistic regression, stratified 10-fold, scaled numbers, one-hot categories, with PageValues, unweighted",
     "ROC-AUC 0.894, F1 0.51"),
    ("same, class-balanced", "ROC-AUC 0.904, F1 0.61"),
    ("XGBoost with feature selection and oversampling (PMC10121810)", "ROC-AUC 0.937, accuracy 90.65 %"),
    ("Sakar et al. 2019, MLP and random forest", "accuracy about 88-90 %"),
]




def load_online_shoppers(path: str | Path) -> tuple[Any, dict[str, int]]:
    """Read the CSV and apply the quirk rules of the module docstring.

    Returns:
        ``(DataFrame, counts)`` where counts has ``rows_read``, ``rows_dropped_blank``,
        ``rows_duration_minus_one`` and ``rows_kept``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a column is missing.
    """
    import pandas as pd

    df = pd.read_csv(path)
    missing = [c for c in NUMERIC + CATEGORICAL + ["PageValues", "Weekend", LABEL] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    counts = {"rows_read": int(len(df))}
    blank = df[COUNT_DURATION + ["BounceRates", "ExitRates"]].isna().any(axis=1)
    counts["rows_dropped_blank"] = int(blank.sum())
    df = df[~blank].copy()
    minus_one = (df[DURATIONS] == -1).any(axis=1)
    counts["rows_duration_minus_one"] = int(minus_one.sum())
    for col in DURATIONS:
        df.loc[df[col] == -1, col] = 0.0
    df["Month"] = df["Month"].replace({"June": "Jun"})
    df["Weekend"] = df["Weekend"].astype(str).str.upper().eq("TRUE").astype(float)
    df[LABEL] = df[LABEL].astype(str).str.upper().eq("TRUE").astype(int)
    for col in CATEGORICAL:
        df[col] = df[col].astype(str)
    counts["rows_kept"] = int(len(df))
    return df.reset_index(drop=True), counts


@dataclass(frozen=True)
class Config:
    """One evaluated configuration."""

    key: str
    title: str
    page_values: bool
    class_weight: str | None
    calibrated: bool
    intentflow_like: bool = False


CONFIGS = [
    Config("pv_lr", "with PageValues, LR unweighted", True, None, False),
    Config("pv_lr_bal", "with PageValues, LR class-balanced", True, "balanced", False),
    Config("pv_lr_cal", "with PageValues, LR + sigmoid calibration (shipped family)", True, None, True),
    Config("nopv_lr", "without PageValues, LR unweighted", False, None, False),
    Config("nopv_lr_bal", "without PageValues, LR class-balanced", False, "balanced", False),
    Config("nopv_lr_cal", "without PageValues, LR + sigmoid calibration (shipped family)", False, None, True),
    Config("intentflow_like", "only what intentflow's OTTO-trained features can see (pages, product pages, "
           "session duration), calibrated", False, None, True, True),
]


def design(df, cfg: Config):
    """``(X DataFrame, y, numeric columns, categorical columns)`` of one configuration."""
    import pandas as pd

    y = df[LABEL].to_numpy()
    if cfg.intentflow_like:
        X = pd.DataFrame({
            "page_view_count": df["Administrative"] + df["Informational"] + df["ProductRelated"],
            "product_view_count": df["ProductRelated"],
            "session_age_s": df[DURATIONS].sum(axis=1),
        })
        return X, y, list(X.columns), []
    numeric = NUMERIC + ["Weekend"] + (["PageValues"] if cfg.page_values else [])
    return df[numeric + CATEGORICAL], y, numeric, CATEGORICAL


def make_model(cfg: Config, numeric: list[str], categorical: list[str], seed: int):
    """Scaled numbers + one-hot categories -> LogisticRegression (optionally sigmoid-calibrated)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = [("num", StandardScaler(), numeric)]
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
    pipe = Pipeline([("prep", ColumnTransformer(parts)),
                     ("logreg", LogisticRegression(max_iter=5000, class_weight=cfg.class_weight, random_state=seed))])
    if not cfg.calibrated:
        return pipe
    return CalibratedClassifierCV(pipe, method="sigmoid", ensemble=False,
                                  cv=StratifiedKFold(3, shuffle=True, random_state=seed))


def fold_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
            "f1": float(f1_score(y, (p >= 0.5).astype(int))), "brier": float(brier_score_loss(y, p))}


def cross_validate(df, cfg: Config, folds: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    """Per-fold metrics and the out-of-fold probabilities of one configuration."""
    from sklearn.model_selection import StratifiedKFold
    from tqdm import tqdm

    X, y, numeric, categorical = design(df, cfg)
    oof = np.zeros(len(y))
    per_fold = []
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    # a progress bar on a terminal (stderr; none when not a TTY, e.g. CI logs)
    for train_idx, test_idx in tqdm(splits, total=folds, desc="CV", unit="fold", disable=None, leave=False):
        model = make_model(cfg, numeric, categorical, seed).fit(X.iloc[train_idx], y[train_idx])
        p = model.predict_proba(X.iloc[test_idx])[:, 1]
        oof[test_idx] = p
        per_fold.append(fold_metrics(y[test_idx], p))
    return per_fold, oof


def summarize(per_fold: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    keys = per_fold[0].keys()
    return {k: (float(np.mean([f[k] for f in per_fold])), float(np.std([f[k] for f in per_fold]))) for k in keys}


def plot_calibration(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> None:
    """Reliability diagram (10 quantile bins) of out-of-fold probabilities, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for title, p in curves.items():
        frac_pos, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean_pred, frac_pos, marker="o", label=title)
    ax.set_xlabel("mean predicted probability (out-of-fold)")
    ax.set_ylabel("observed fraction with Revenue")
    ax.set_title("Online Shoppers Intention, stratified 10-fold")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(results: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {r['title']} | {r['roc_auc'][0]:.3f} ± {r['roc_auc'][1]:.3f} | {r['pr_auc'][0]:.3f} ± {r['pr_auc'][1]:.3f} "
        f"| {r['f1'][0]:.3f} ± {r['f1'][1]:.3f} | {r['brier'][0]:.4f} ± {r['brier'][1]:.4f} |"
        for r in results["configs"])
    published = "\n".join(f"| {what} | {fig} |" for what, fig in PUBLISHED)
    c = results["data"]["counts"]
    return f"""# Evaluation of the intent model family on Online Shoppers Purchasing Intention

Generated by `intentflow evaluate` (models/evaluate.py) on {results['created_at']}; reproduce with
`.venv/bin/intentflow evaluate` (reads `$INTENTFLOW_DATA_DIR/{CSV_NAME}`, md5 `{results['data']['md5']}`).

**Data**: UCI "Online Shoppers Purchasing Intention" (Sakar et al. 2019), one row per session, label `Revenue`.
{c['rows_read']} rows read; {c['rows_dropped_blank']} rows with the first 8 columns blank dropped (all `Revenue = FALSE`,
nothing to impute from); {c['rows_duration_minus_one']} rows with duration `-1` (the tool's "not measured", one- or two-page
visits) set to 0 s; `June` renamed `Jun`. {c['rows_kept']} rows kept, {results['data']['positive_rate']:.1%} positive.

**Protocol**: stratified {results['folds']}-fold cross-validation (shuffled, seed {results['seed']}); numbers standardized,
`Month`, `OperatingSystems`, `Browser`, `Region`, `TrafficType`, `VisitorType` one-hot, `Weekend` 0/1; scikit-learn
`LogisticRegression` (L2, C=1). "Calibrated" = `CalibratedClassifierCV(method="sigmoid", ensemble=False)` with 3 inner
folds, the family `models/train.py` ships. F1 at threshold 0.5. Mean ± standard deviation over the folds.

`PageValues` is computed after the session from the pages that led to a transaction: it leaks the label, and the
real-time model must not use it. The rows with it exist to compare with the published protocol.

| configuration | ROC-AUC | PR-AUC | F1 | Brier |
|---|---|---|---|---|
{rows}

Published figures on the same file (different protocols; from `shared/data/MANIFEST.md`):

| model | published |
|---|---|
{published}

Reading: with `PageValues`, our unweighted and class-balanced logistic regressions land at the published
0.894 / 0.904 ROC-AUC level; class balancing raises F1 at 0.5 but wrecks calibration (Brier), which the rules need,
so the shipped family is unweighted + sigmoid calibration. F1 at 0.5 is near 0 without `PageValues` because calibrated
probabilities rarely pass 0.5 at a 15.5 % base rate; the rules compare the score with their own thresholds. Without the leaking column the same family drops to the
row "without PageValues": that is what a real-time scorer can honestly expect from aggregated page counts and
durations. The last row restricts the inputs to what the shipped OTTO-trained model sees (page views, product page
views, session duration).

Calibration plot of the out-of-fold predictions: [calibration.png](calibration.png).
"""


def evaluate(data: Path, out_dir: Path = OUT_DIR, folds: int = 10, seed: int = 0) -> dict[str, Any]:
    """Run every configuration; write EVALUATION.md, evaluation.json and calibration.png; return the results."""
    import hashlib

    df, counts = load_online_shoppers(data)
    results: dict[str, Any] = {
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": f"$INTENTFLOW_DATA_DIR/{CSV_NAME}", "md5": hashlib.md5(Path(data).read_bytes()).hexdigest(),
                 "counts": counts, "positive_rate": float(df[LABEL].mean())},
        "folds": folds, "seed": seed, "configs": [],
    }
    curves: dict[str, np.ndarray] = {}
    for cfg in CONFIGS:
        per_fold, oof = cross_validate(df, cfg, folds, seed)
        results["configs"].append({"key": cfg.key, "title": cfg.title, **summarize(per_fold), "per_fold": per_fold})
        if cfg.key in ("pv_lr_cal", "nopv_lr_cal", "nopv_lr_bal", "intentflow_like"):
            curves[cfg.title.split(" (")[0]] = oof
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_calibration(df[LABEL].to_numpy(), curves, out_dir / "calibration.png")
    (out_dir / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
    # keep the section `intentflow train-uci` writes (models/train_uci.py) below this command's own text
    from models.train_uci import SECTION_BEGIN, SECTION_END  # noqa: PLC0415

    path = out_dir / "EVALUATION.md"
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(SECTION_BEGIN):old.index(SECTION_END) + len(SECTION_END)] if SECTION_BEGIN in old else ""
    path.write_text(render(results) + ("\n" + kept + "\n" if kept else ""))
    return results


@click.command("evaluate")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=f"the CSV (default $INTENTFLOW_DATA_DIR/{CSV_NAME})")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=OUT_DIR, show_default=True)
@click.option("--folds", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def evaluate_cmd(data: Path | None, out_dir: Path, folds: int, seed: int) -> None:
    """Stratified k-fold CV of the intent model family on Online Shoppers Intention; writes EVALUATION.md."""
    data = data or data_dir() / CSV_NAME
    if not data.exists():
        raise click.UsageError(f"{data} not found: set INTENTFLOW_DATA_DIR (see shared/data/MANIFEST.md)")
    results = evaluate(data, out_dir, folds, seed)
    for r in results["configs"]:
        click.echo(f"{r['title'][:70]:<70} ROC-AUC {r['roc_auc'][0]:.3f}  PR-AUC {r['pr_auc'][0]:.3f}  "
                   f"F1 {r['f1'][0]:.3f}  Brier {r['brier'][0]:.4f}")
    click.echo(f"wrote {out_dir / 'EVALUATION.md'}, evaluation.json, calibration.png")


if __name__ == "__main__":
    evaluate_cmd()
