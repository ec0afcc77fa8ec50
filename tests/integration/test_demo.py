"""``intentflow demo`` (the README's first command after setup) on the real stack: it replays real data
and scripted visitors through its own topics, then runs its SIMULATION experiment with the simulated
visitors only. Before 2026-12-04 the demo's ruleset carried the experiment from the start, so the
replayed sessions (clusters of one visitor's many sessions) entered the per-arm session counts and the
report flagged a sample ratio mismatch on every run."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from operators.layout import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.flink]

VISITORS = 200


def test_demo_experiment_counts_only_its_simulated_visitors_and_its_topics_are_removed(stack):
    from kafka.admin import KafkaAdminClient

    from udfs.config import kafka_client_kwargs

    run = subprocess.run([sys.executable, "-m", "intentflow.cli", "demo", "--limit-per-source", "300",
                          "--simulate-visitors", str(VISITORS)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "article visitor      show_video_demo_and_price_comparison" in out, out[-4000:]
    # every action of the run is listed or counted in the "... and N more" line (before 2026-12-04 the
    # actions of the last batches could be missed: the list stopped once the event count was reached)
    listing = out.split("actions arriving in Redis", 1)[1].split("\nsummary", 1)[0]
    listed = len(re.findall(r"^  \S+\s+\S+\s+rule=", listing, re.M))
    more = re.search(r"^  \.\.\. and (\d+) more actions", listing, re.M)
    total = int(re.search(r"^  actions\s+(\d+) ", out, re.M).group(1))
    assert listed + (int(more.group(1)) if more else 0) == total > 0, listing[-3000:]
    assert re.search(r"^  demo-article-visitor\s", listing, re.M), listing[-3000:]
    assert "smallest lift a fixed-horizon test of two proportions detects at 80 % power" in out, out[-4000:]
    sessions = {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (holdout|personalized)\s+(\d+)\s", out, re.M)}
    assert set(sessions) == {"holdout", "personalized"}, out[-4000:]
    # every simulated visitor is one session of the experiment, and nothing else is
    assert sum(sessions.values()) == VISITORS, out[-4000:]
    run_prefix = re.search(r"Redis prefix (demo\d{6}):", out).group(1)
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, **kafka_client_kwargs())
    try:
        left = [t for t in admin.list_topics() if t.startswith(run_prefix + ".")]
    finally:
        admin.close()
    assert left == []
