"""Training data: recorded contract events (JSONL files, a Kafka topic) -> one scored moment per applied
event (:class:`Dataset`), labelled by a later conversion, and the features such data can teach.

Used by ``intentflow train`` (``models/train.py``) and ``intentflow gate`` (``models/gate_cmd.py``);
sessions are replayed with :func:`udfs.session.replay_session`, the code the Flink job runs.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson

from udfs.features import FEATURE_NAMES, N_FEATURES
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig
from udfs.session import replay_session

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


def time_split(ts_ms: np.ndarray, groups: np.ndarray, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Split scored moments by session, the latest sessions held out: a time-based split.

    Sessions are ordered by their first moment's event time (ties by session id); the last
    ``ceil(test_size * n_sessions)`` of them (at least 1, at most n - 1) are the test part. No session is on
    both sides, and every held-out session started at or after every training session, so the held-out
    metrics measure the model on traffic later than what it learned from (what the promotion gate compares,
    udfs/gate.py).

    Args:
        ts_ms: ``int64[n]`` event time of each moment.
        groups: ``[n]`` session id of each moment.
        test_size: held-out share of sessions, in (0, 1).

    Returns:
        ``(train_idx, test_idx)``: ``int64`` row indices, each in input order.

    Raises:
        ValueError: ``test_size`` outside (0, 1), lengths differ, or fewer than 2 sessions.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    ts_ms, groups = np.asarray(ts_ms, dtype=np.int64), np.asarray(groups, dtype=object)
    if len(ts_ms) != len(groups):
        raise ValueError(f"{len(ts_ms)} times but {len(groups)} session ids")
    first: dict = {}
    for t, g in zip(ts_ms.tolist(), groups.tolist()):
        if g not in first or t < first[g]:
            first[g] = t
    if len(first) < 2:
        raise ValueError(f"a time split needs at least 2 sessions, got {len(first)}")
    order = sorted(first, key=lambda g: (first[g], str(g)))
    n_test = min(len(order) - 1, max(1, int(np.ceil(test_size * len(order)))))
    held_out = set(order[-n_test:])
    is_test = np.fromiter((g in held_out for g in groups.tolist()), dtype=bool, count=len(groups))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
