"""Run the job's real topology on an in-memory source and collect its outputs (no Kafka): the harness of
``tests/integration/test_topology.py``.

``python -m tests.topology_run IN OUT --redis-prefix P [--window-ms N] [--ruleset FILE ...]``: IN holds one
Kafka value per line; OUT gets one JSON output (action or DLQ record) per line. Redis (the stack's) gets
the decider's writes under P.
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.personalization import CollectionEvents, CollectionRules, CollectSinks, Pipeline, build_pipeline  # noqa: E402
from operators.flink_env import create_env  # noqa: E402
from udfs.config import JobConfig, stack_settings  # noqa: E402


@click.command()
@click.argument("in_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_path", type=click.Path(dir_okay=False))
@click.option("--redis-prefix", required=True)
@click.option("--window-ms", type=int, default=JobConfig.window_ms)
@click.option("--ruleset", "rulesets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="rulesets sent on the broadcast stream, in order")
def main(in_path: str, out_path: str, redis_prefix: str, window_ms: int, rulesets: tuple[str, ...]) -> None:
    values = tuple(line for line in Path(in_path).read_text().splitlines() if line)
    cfg = replace(JobConfig(), redis_prefix=redis_prefix, window_ms=window_ms)
    pipeline = Pipeline(events=CollectionEvents(values),
                        rules=CollectionRules(tuple(Path(r).read_text() for r in rulesets)),
                        sinks=CollectSinks(stack_settings().redis_url), config=cfg)
    with tempfile.TemporaryDirectory() as checkpoints:
        env = create_env(parallelism=1, checkpoint_dir=Path(checkpoints))
        outputs = build_pipeline(env, pipeline)
        with outputs.execute_and_collect("intentflow-topology-test") as results, open(out_path, "w") as out:
            for value in results:
                out.write(value + "\n")


if __name__ == "__main__":
    main()
