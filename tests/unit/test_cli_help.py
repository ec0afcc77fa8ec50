"""The CLI a newcomer meets (issue 15 item 7): every option of `intentflow job` (and its subcommands),
`stack`, `replay` and `rules` has help text, and no default is shown as a Python expression."""
from __future__ import annotations

import click
import pytest

from intentflow.cli import main

CHECKED = ("job", "stack", "replay", "rules")


def _options(cmd: click.Command, ctx: click.Context, path: str):
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            yield from _options(cmd.get_command(ctx, name), ctx, f"{path} {name}")
    for param in cmd.params:
        if isinstance(param, click.Option):
            yield path, param


@pytest.mark.parametrize("name", CHECKED)
def test_every_option_has_help_and_shows_values_not_code(name):
    ctx = click.Context(main)
    options = list(_options(main.get_command(ctx, name), ctx, name))
    assert options
    for path, option in options:
        assert option.help and option.help.strip(), f"{path} {option.opts[0]} has no help"
        assert "()" not in option.help, f"{path} {option.opts[0]}: {option.help}"
        assert not callable(option.default), f"{path} {option.opts[0]}: default shown as (dynamic)"
