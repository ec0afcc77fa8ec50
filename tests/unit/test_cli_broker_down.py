"""CLI commands that talk to Kafka say which broker did not answer, in one line, when it is down (no traceback)."""
from __future__ import annotations

import socket

from click.testing import CliRunner

from intentflow.rules_cmd import rules_cmd
from udfs.rules import DEFAULT_RULES_PATH


def _closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rules_publish_and_show_fail_with_one_line_when_the_broker_is_down():
    bootstrap = f"127.0.0.1:{_closed_port()}"
    for args in (["publish", str(DEFAULT_RULES_PATH)], ["show"]):
        result = CliRunner().invoke(rules_cmd, [*args, "--bootstrap", bootstrap, "--timeout-s", "1"])
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
        assert f"Kafka at {bootstrap} did not answer" in result.output
        assert "Traceback" not in result.output
