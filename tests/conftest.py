"""Shared fixtures.

Integration tests use the real local stack (Kafka KRaft broker, Redis) that ``make up`` starts;
the ``stack`` fixture starts it itself when it is not running, so ``pytest`` alone works too.
Each test that touches Kafka gets its own topic set (a unique prefix) and each that touches Redis its
own key prefix, so tests never see each other's data.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The real data sets: ``$INTENTFLOW_DATA_DIR`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("INTENTFLOW_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose prerequisite is missing, on a developer's machine; under CI (``CI`` set, as
    ``.ci/run`` is run) fail instead, so a missing data set or browser can never turn CI green by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run every test: a skip here would hide it)")
    pytest.skip(reason)


def real_data() -> Path | None:
    """The real data sets' folder when it is there (``MANIFEST.md`` in :func:`data_dir`), else None.

    For tests that need varied sessions, not a given data set: they use :func:`scripted_sessions` when
    this is None, so a machine (or CI) without ``../shared/data`` still runs them instead of skipping."""
    path = data_dir()
    return path if (path / "MANIFEST.md").exists() else None


def scripted_sessions(n_sessions: int, n_events: int, seed: int) -> list[dict]:
    """``n_sessions`` scripted sessions (``s0``, ``s1``, ...) of ``n_events`` contract events each, every
    behavioural type mixed at random (``mixed_sessions`` of tests/unit/test_session.py, the unit tests'
    stream = batch input), each session's events in event-time order; the stand-in for recorded sessions
    when the real data sets are missing."""
    from tests.unit.test_session import mixed_sessions

    return mixed_sessions(seed=seed, n_sessions=n_sessions, n_events=n_events)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data sets; skips (with where to get them) when absent, fails under CI."""
    path = data_dir()
    if not (path / "MANIFEST.md").exists():
        skip_unless_ci(f"real data sets not found at {path}: set INTENTFLOW_DATA_DIR (see docs/data.md for sources)")
    return path


@pytest.fixture(scope="session")
def stack():
    """Make sure Kafka and Redis of the local stack run; return the StackSettings."""
    from intentflow import stack as local_stack
    from udfs.config import stack_settings

    settings = stack_settings()
    if settings.kafka_bootstrap == "127.0.0.1:9092":
        st = local_stack.status()
        if not (st["kafka"] and st["redis"]):
            local_stack.up()
    return settings


@pytest.fixture
def topics(stack):
    """A fresh set of the four intentflow topics under a unique prefix; deleted afterwards."""
    from kafka.admin import KafkaAdminClient

    from intentflow.services.kafka_broker import create_topics
    from udfs.config import Topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    create_topics(stack.kafka_bootstrap, prefix=prefix)
    yield Topics.with_prefix(prefix)
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        admin.delete_topics(list(Topics.with_prefix(prefix).all()))
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    finally:
        admin.close()


@pytest.fixture
def redis_client(stack):
    """A Redis client on the stack's server; yields (client, unique key prefix); deletes the keys after."""
    import redis

    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    yield client, prefix
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


# ----------------------------------------------------------------------------------- claim tests

CLAIMS_TABLE = ROOT / "docs" / "claims.md"


def claim_test_ids() -> set[str]:
    """Node ids (``tests/...py::test_name``) named in docs/claims.md, the claim -> test table."""
    import re

    return set(re.findall(r"`(tests/[\w/]+\.py::\w+)`", CLAIMS_TABLE.read_text()))


def pytest_collection_modifyitems(config, items):
    """Mark every test named in docs/claims.md ``claim`` (parametrized cases included)."""
    ids = claim_test_ids()
    for item in items:
        if item.nodeid.split("[", 1)[0] in ids:
            item.add_marker(pytest.mark.claim)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skipped ``claim`` test is a failure: a README claim must never go unchecked silently."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and item.get_closest_marker("claim") is not None \
            and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"claim test skipped under CI (docs/claims.md): {reason}"
