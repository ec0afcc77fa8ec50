"""``intentflow replay``: recorded data sets -> contract events on Kafka ``signals.raw``.

:func:`replay` does the work and returns a summary dict; :func:`replay_cmd` is the click wrapper.

Order and pacing: the converter's events (grouped per session, time-ordered inside each) are sorted
once by event time (stable, so per-session order and ties are kept) and produced with key =
``session_id``, so every session lands in one partition in order *and* the topic as a whole advances
in event time (a job's watermarks see no session going back in time). ``--speed asrecorded`` sleeps
the recorded gaps, ``xN`` divides them by N, ``max`` does not sleep. ``--shift-to-now`` moves every
timestamp by one constant so the first event is "now" (for live demos; ids stay the same).

Rejected input (lines of our own JSONL that fail the contract) goes to ``signals.dlq`` with stage
``collector``; rows the converters drop (overflow samples, duplicates, ...) are counted in the
summary's ``source_stats``. Events whose ``event_id`` was already produced in this run (the same row
in two files of a folder) are skipped and counted as ``duplicates_skipped``.

Without the data folder, ``--sources`` prints where each data set comes from and ``--verify DIR``
checks a downloaded copy against the checksum table of ``docs/data.md``.
"""
from __future__ import annotations

import hashlib
import importlib
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import orjson

from udfs.config import kafka_client_kwargs, stack_settings
from udfs.contract import dumps_event
from udfs.datasets import SOURCES, data_dir
from udfs.dlq import dlq_record, dumps_dlq

ROOT = Path(__file__).resolve().parents[1]
DATA_DOC = ROOT / "docs" / "data.md"

#: ``--source`` -> default path under the data folder.
DEFAULT_PATHS: dict[str, str] = {
    "otto": "otto/test_resources_train.jsonl",
    "yoochoose": "yoochoose_rsc15",
    "balabit": "balabit_mouse",
    "rrweb": "rrweb_fixtures",
}

_CHECKSUM_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(\d+)\s*\|\s*([0-9a-f]{32})\s*\|\s*([0-9a-f]{64})\s*\|\s*$")


def checksum_table(doc: Path = DATA_DOC) -> dict[str, tuple[int, str, str]]:
    """``{relative path: (bytes, md5, sha256)}`` from the checksum table of ``docs/data.md``."""
    table = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = _CHECKSUM_ROW.match(line)
        if m:
            table[m.group(1)] = (int(m.group(2)), m.group(3), m.group(4))
    return table


def verify_data(folder: str | Path, doc: Path = DATA_DOC) -> dict[str, str]:
    """Check every file of the checksum table under ``folder``.

    Returns ``{relative path: "ok" | "missing" | "size mismatch" | "md5 mismatch" | "sha256 mismatch"}``.
    """
    folder = Path(folder)
    result = {}
    for rel, (size, md5, sha256) in checksum_table(doc).items():
        path = folder / rel
        if not path.is_file():
            result[rel] = "missing"
            continue
        data = path.read_bytes()
        if len(data) != size:
            result[rel] = "size mismatch"
        elif hashlib.md5(data).hexdigest() != md5:  # noqa: S324 - a checksum, not security
            result[rel] = "md5 mismatch"
        elif hashlib.sha256(data).hexdigest() != sha256:
            result[rel] = "sha256 mismatch"
        else:
            result[rel] = "ok"
    return result


def sources_text(doc: Path = DATA_DOC) -> str:
    """The 'Sources' section of docs/data.md (where each data set comes from)."""
    text = doc.read_text(encoding="utf-8")
    start = text.find("## Sources")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None].strip()


def parse_speed(speed: str) -> float | None:
    """``"max"`` -> None (no pacing), ``"asrecorded"`` -> 1.0, ``"x10"``/``"10x"``/``"10"`` -> 10.0.

    Raises ValueError for anything else or a factor <= 0.
    """
    s = speed.strip().lower()
    if s == "max":
        return None
    if s in ("asrecorded", "as-recorded", "realtime"):
        return 1.0
    factor = float(s.strip("x"))
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {speed!r}")
    return factor


def replay(
    source: str,
    path: str | Path | None = None,
    *,
    speed: str = "max",
    limit: int | None = None,
    topic: str | None = None,
    dlq_topic: str | None = None,
    bootstrap: str | None = None,
    shift_to_now: bool = False,
    progress: bool = True,
    max_sleep_s: float = 60.0,
) -> dict[str, Any]:
    """Replay one data set into Kafka; return the summary.

    Args:
        source: one of ``otto``, ``yoochoose``, ``balabit``, ``rrweb``, ``jsonl``.
        path: file/folder; default ``DEFAULT_PATHS[source]`` under the data folder (``jsonl`` needs one).
        speed: ``max``, ``asrecorded`` or ``xN`` (see :func:`parse_speed`).
        limit: at most this many events (after conversion; None = all).
        topic / dlq_topic / bootstrap: default from ``udfs.config.stack_settings()``.
        shift_to_now: shift all times so the first event is at the current time.
        progress: show a tqdm progress bar (stderr).
        max_sleep_s: longest single pause when pacing (a recorded multi-day gap is cut to this), s.

    Returns:
        ``{"source", "path", "topic", "speed", "events_converted", "produced", "failed", "by_type",
        "duplicates_skipped", "dlq_produced", "rejected" (reason -> count), "source_stats",
        "sessions", "first_ts_ms", "last_ts_ms", "elapsed_s", "events_per_s"}``.

    Raises:
        ValueError: unknown source or speed. FileNotFoundError: no data at ``path``.
        kafka.errors.KafkaError: the broker is unreachable.
    """
    from kafka import KafkaProducer
    from tqdm import tqdm

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {SOURCES}")
    factor = parse_speed(speed)
    st = stack_settings()
    topic = topic or st.topics.raw
    dlq_topic = dlq_topic or st.topics.dlq
    bootstrap = bootstrap or st.kafka_bootstrap
    if path is None:
        if source not in DEFAULT_PATHS:
            raise ValueError(f"--path is required for source {source!r}")
        path = data_dir() / DEFAULT_PATHS[source]
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; see `intentflow replay --sources` and docs/data.md")

    t_start = time.perf_counter()
    source_stats: dict[str, int] = {}
    rejected: Counter[str] = Counter()
    dlq_records: list[bytes] = []

    def on_reject(reason: str, detail: str, payload: bytes) -> None:
        rejected[reason] += 1
        dlq_records.append(dumps_dlq(dlq_record(reason, "collector", payload, detail=detail)))

    module = importlib.import_module(f"udfs.datasets.{source}")
    kwargs: dict[str, Any] = {"limit": limit, "stats": source_stats}
    if source == "jsonl":
        kwargs["on_reject"] = on_reject
    # (ts_ms, order, session_id, type, event_id, value) - bytes keep memory small for the sort
    rows: list[tuple[int, int, str, str, bytes]] = []
    seen: set[str] = set()
    duplicates = 0
    for event in module.iter_events(path, **kwargs):
        if event["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(event["event_id"])
        rows.append((event["ts_ms"], len(rows), event["session_id"], event["type"], dumps_event(event)))
    del seen
    rows.sort(key=lambda r: (r[0], r[1]))
    shift_ms = int(time.time() * 1000) - rows[0][0] if (shift_to_now and rows) else 0

    # linger 20 ms batches well at full speed; 2 ms when paced so events leave when they are due
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20 if factor is None else 2,
                             batch_size=256 * 1024, max_block_ms=30_000, client_id="intentflow-replay",
                             **kafka_client_kwargs())
    failed: list[Exception] = []
    produced = 0
    by_type: Counter[str] = Counter()
    sessions: set[str] = set()
    try:
        wall0 = time.monotonic()
        first_ts = rows[0][0] if rows else 0
        skipped_s = 0.0
        bar = tqdm(total=len(rows), unit="ev", desc=f"replay {source}", disable=not progress, mininterval=0.5)
        for ts_ms, _, session_id, etype, value in rows:
            if factor is not None:
                due_s = (ts_ms - first_ts) / 1000.0 / factor - skipped_s
                wait_s = due_s - (time.monotonic() - wall0)
                if wait_s > max_sleep_s:  # cut long recorded gaps, keep the rest of the timeline
                    skipped_s += wait_s - max_sleep_s
                    wait_s = max_sleep_s
                if wait_s > 0:
                    producer.flush()
                    time.sleep(wait_s)
            if shift_ms:
                obj = orjson.loads(value)
                for key in ("client_ts_ms", "ts_ms"):
                    obj[key] += shift_ms
                value = dumps_event(obj)
            producer.send(topic, key=session_id.encode(), value=value).add_errback(failed.append)
            by_type[etype] += 1
            sessions.add(session_id)
            produced += 1
            bar.update(1)
        bar.close()
        for rec in dlq_records:
            producer.send(dlq_topic, value=rec).add_errback(failed.append)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    elapsed_s = time.perf_counter() - t_start
    return {
        "source": source,
        "path": str(path),
        "topic": topic,
        "speed": speed,
        "events_converted": len(rows) + duplicates,
        "produced": produced - len(failed),
        "failed": len(failed),
        "by_type": dict(sorted(by_type.items())),
        "sessions": len(sessions),
        "duplicates_skipped": duplicates,
        "dlq_produced": len(dlq_records),
        "rejected": dict(rejected),
        "source_stats": source_stats,
        "first_ts_ms": rows[0][0] + shift_ms if rows else None,
        "last_ts_ms": rows[-1][0] + shift_ms if rows else None,
        "elapsed_s": round(elapsed_s, 3),
        "events_per_s": round(produced / elapsed_s, 1) if elapsed_s > 0 else None,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    click.echo(f"replayed {summary['produced']} events from {summary['source']} ({summary['path']}) "
               f"to {summary['topic']} in {summary['elapsed_s']} s ({summary['events_per_s']} ev/s), "
               f"{summary['sessions']} sessions")
    for etype, n in summary["by_type"].items():
        click.echo(f"  {etype:<18} {n}")
    click.echo(f"  failed to produce  {summary['failed']}")
    click.echo(f"  duplicates skipped {summary['duplicates_skipped']}")
    click.echo(f"  rejected -> DLQ    {summary['dlq_produced']} {summary['rejected'] or ''}")
    for key, n in summary["source_stats"].items():
        click.echo(f"  source: {key:<28} {n}")


@click.command("replay")
@click.option("--source", type=click.Choice(SOURCES), help="data set to replay")
@click.option("--path", type=click.Path(), default=None, help="file or folder (default: under the data folder)")
@click.option("--speed", default="max", show_default=True, help="asrecorded | xN | max")
@click.option("--limit", type=int, default=None, help="at most this many events")
@click.option("--topic", default=None, help=f"Topic to produce to.  [default: {stack_settings().topics.raw} (INTENTFLOW_TOPIC_PREFIX + signals.raw)]")
@click.option("--dlq-topic", default=None, help=f"Topic for records that cannot be mapped.  [default: {stack_settings().topics.dlq}]")
@click.option("--shift-to-now", is_flag=True, help="move all times so the first event is now")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--sources", "show_sources", is_flag=True, help="print where each data set comes from and exit")
@click.option("--verify", "verify_dir", type=click.Path(), default=None,
              help="verify a downloaded copy of the data folder against docs/data.md and exit")
def replay_cmd(source, path, speed, limit, topic, dlq_topic, shift_to_now, no_progress, as_json,
               show_sources, verify_dir) -> None:
    """Replay a recorded data set into Kafka (per-session order kept, key = session_id)."""
    if show_sources:
        click.echo(sources_text())
        return
    if verify_dir:
        result = verify_data(verify_dir)
        for rel, status in result.items():
            click.echo(f"{status:<16} {rel}")
        bad = [r for r, s in result.items() if s != "ok"]
        if bad:
            raise click.ClickException(f"{len(bad)} of {len(result)} files missing or different")
        click.echo(f"all {len(result)} files match docs/data.md")
        return
    if not source:
        raise click.UsageError("--source is required (or use --sources / --verify)")
    if source != "jsonl" and path is None and not (data_dir() / "MANIFEST.md").exists():
        click.echo(f"data folder not found at {data_dir()} (set INTENTFLOW_DATA_DIR). Sources:\n", err=True)
        click.echo(sources_text(), err=True)
        raise click.ClickException("no data: download the files above, then `intentflow replay --verify DIR`")
    try:
        summary = replay(source, path, speed=speed, limit=limit, topic=topic, dlq_topic=dlq_topic,
                         shift_to_now=shift_to_now, progress=not no_progress)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_summary(summary)
