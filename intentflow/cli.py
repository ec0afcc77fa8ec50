"""The ``intentflow`` command line.

Each subcommand lives in the module that owns it and is imported only when it is called, so
``intentflow stack up`` does not import PyFlink and ``intentflow replay`` does not start a JVM.
"""
from __future__ import annotations

import importlib

import click

#: subcommand name -> "module:attribute" of a click command.
SUBCOMMANDS: dict[str, str] = {
    "stack": "intentflow.stack:stack_cmd",
    "replay": "intentflow.replay:replay_cmd",
    "collector": "collector.app:collector_cmd",
    "job": "intentflow.jobctl:job_group",
    "submit": "intentflow.jobctl:submit_cmd",
    "train": "models.train:train_cmd",
    "train-uci": "models.train_uci:train_uci_cmd",
    "evaluate": "models.evaluate:evaluate_cmd",
    "gate": "models.gate_cmd:gate_cmd",
    "rules": "intentflow.rules_cmd:rules_cmd",
    "page-rates": "intentflow.page_rates_cmd:page_rates_cmd",
    "experiments": "intentflow.experiments_cmd:experiments_cmd",
    "simulate": "intentflow.simulate:simulate_cmd",
    "demo": "intentflow.demo:demo_cmd",
    "backtest": "intentflow.backtest:backtest_cmd",
    "bench": "bench.run:bench_cmd",
    "chaos": "intentflow.chaos:chaos_cmd",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise click.ClickException(f"'{name}' is not available in this build ({module_name} missing)")
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup)
def main() -> None:
    """intentflow: behavioral signals -> Kafka -> PyFlink -> personalization actions in Redis."""


if __name__ == "__main__":
    main()
