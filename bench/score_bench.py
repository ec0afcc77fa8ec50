"""Micro-benchmark of intent scoring: per-call onnxruntime latency of the shipped model.

Loads the latest ``intent-lr`` through its manifest (``udfs.scoring.ModelRegistry``), exactly as the job
does (one InferenceSession, one intra-op thread, sequential), and times ``IntentScorer.score`` (column
selection by name + one ``run``) for batch sizes 1, 16, 64 and 256 of full feature vectors.

Run: ``.venv/bin/python bench/score_bench.py [--calls 2000]``; prints a table and writes
``bench/results/score_bench.json`` (p50/p95/p99/mean µs per call and µs per row).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from udfs.features import N_FEATURES  # noqa: E402
from udfs.scoring import DEFAULT_MODEL_NAME, ModelRegistry  # noqa: E402

BATCH_SIZES = (1, 16, 64, 256)


@click.command()
@click.option("--calls", default=2000, show_default=True, help="timed calls per batch size (after 100 warm-up calls)")
@click.option("--model", "name", default=DEFAULT_MODEL_NAME, show_default=True)
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "models", show_default=True)
@click.option("--out", default=str(ROOT / "bench" / "results" / "score_bench.json"), show_default=True)
def main(calls: int, name: str, models_dir: Path, out: str) -> None:
    """Time IntentScorer.score per call for batch sizes 1, 16, 64, 256."""
    scorer = ModelRegistry(models_dir).load(name)
    rng = np.random.default_rng(0)
    results = []
    for n in BATCH_SIZES:
        batch = rng.gamma(2.0, 5.0, size=(n, N_FEATURES)).astype(np.float32)
        for _ in range(100):
            scorer.score(batch)
        times = np.empty(calls)
        for i in range(calls):
            t0 = time.perf_counter_ns()
            scorer.score(batch)
            times[i] = time.perf_counter_ns() - t0
        us = times / 1e3
        row = {"batch_size": n, "calls": calls, "p50_us": round(float(np.percentile(us, 50)), 2),
               "p95_us": round(float(np.percentile(us, 95)), 2), "p99_us": round(float(np.percentile(us, 99)), 2),
               "mean_us": round(float(us.mean()), 2), "mean_us_per_row": round(float(us.mean()) / n, 3)}
        results.append(row)
        click.echo(f"batch {n:>4}: p50 {row['p50_us']:>8.1f} µs  p95 {row['p95_us']:>8.1f}  p99 {row['p99_us']:>8.1f}"
                   f"  mean {row['mean_us']:>8.1f}  ({row['mean_us_per_row']:.2f} µs/row)")
    import onnxruntime

    report = {"model_version": scorer.model_version, "model_inputs": len(scorer.features),
              "session": "1 intra-op thread, 1 inter-op thread, sequential, no spinning",
              "machine": {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                          "cpu_count": os.cpu_count(), "platform": platform.platform()},
              "results": results}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"{scorer.model_version}: wrote {out}")


if __name__ == "__main__":
    main()
