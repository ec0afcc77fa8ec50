"""UCI Online Shoppers as training data: every kept row of the CSV turned into contract events
(:mod:`udfs.datasets.uci_shoppers`) and replayed through :func:`udfs.session.replay_session`, the code the
Flink job runs; the features that data can teach (:data:`UCI_FEATURES`) and those the job cannot serve
yet (:data:`NOT_SERVED`). Column <-> feature mapping: docs/uci-mapping.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: The data set's file name under ``$INTENTFLOW_DATA_DIR`` (``udfs.datasets.data_dir``).
CSV_NAME = "online_shoppers_intention.csv"

#: The features UCI Online Shoppers can teach (docs/uci-mapping.md), in model input order.
UCI_FEATURES: tuple[str, ...] = (
    "administrative_page_view_count", "administrative_page_time_s",
    "informational_page_view_count", "informational_page_time_s",
    "product_related_page_view_count", "product_related_page_time_s",
    "page_bounce_rate_mean_ratio", "page_exit_rate_mean_ratio",
    "weekend_flag",
)

#: Features UCI could teach but the job cannot serve yet, with the reason (recorded in the manifest).
NOT_SERVED: dict[str, str] = {
    "returning_visitor_flag": "UCI's VisitorType maps to it, but the job does not know a visitor's visit number "
                              "(udfs.decide creates SessionState with visit_count 1): it would be served as a "
                              "constant 0 ('new visitor'), a skew; the ablation row in EVALUATION.md measures "
                              "what it would add",
}


def build_uci_dataset(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, int], np.ndarray]:
    """``(X float32[n, N_FEATURES], y int8[n], stats, month float32[n])``: each kept row replayed through the
    session code; ``month`` (1-12, the UCI column, not a stream feature) only for the ablation.

    Raises:
        FileNotFoundError: no CSV at ``path``.
    """
    from udfs.datasets.uci_shoppers import iter_sessions
    from udfs.session import replay_session

    stats: dict[str, int] = {}
    from udfs.datasets.uci_shoppers import MONTHS

    xs, ys, months = [], [], []
    for s in iter_sessions(path, stats):
        _, feats, _ = replay_session(s.events, visit_count=s.visit_count)
        xs.append(feats[-1])
        ys.append(s.revenue)
        months.append(MONTHS[s.raw["Month"].strip()])
    stats["rows_kept"] = len(ys)
    return np.stack(xs), np.array(ys, dtype=np.int8), stats, np.array(months, dtype=np.float32)
