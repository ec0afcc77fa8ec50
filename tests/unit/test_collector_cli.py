"""``intentflow collector`` options reach the collector's settings (the rate limit and the Kafka address
were settable only through environment variables; issue 15)."""
from __future__ import annotations

from click.testing import CliRunner

import collector.app as app_module
from collector.settings import CollectorSettings


def _settings_of(monkeypatch, *args: str):
    started = []
    monkeypatch.setattr(app_module.web, "run_app", lambda app, **kw: started.append((app, kw)))
    result = CliRunner().invoke(app_module.collector_cmd, list(args), env={"INTENTFLOW_RATE_LIMIT_PER_S": "7"})
    assert result.exit_code == 0, result.output
    (app, kw), = started
    return app[app_module.SETTINGS_KEY], kw, result.output


def test_options_override_the_environment(monkeypatch):
    settings, kw, output = _settings_of(monkeypatch, "--rate-limit-per-s", "5", "--rate-burst", "9",
                                        "--kafka-bootstrap", "broker:19092", "--trust-forwarded-for",
                                        "--port", "18099")
    assert (settings.rate_limit_per_s, settings.rate_burst) == (5.0, 9)
    assert settings.kafka_bootstrap == "broker:19092" and settings.trust_forwarded_for is True
    assert kw["port"] == 18099
    assert "5 requests/s per client, burst 9" in output


def test_without_options_the_environment_and_defaults_apply(monkeypatch):
    settings, _, output = _settings_of(monkeypatch)
    assert settings.rate_limit_per_s == 7.0  # INTENTFLOW_RATE_LIMIT_PER_S
    assert settings.rate_burst == CollectorSettings.rate_burst
    assert settings.trust_forwarded_for is False


def test_zero_means_no_limit_and_a_negative_rate_is_refused(monkeypatch):
    _, _, output = _settings_of(monkeypatch, "--rate-limit-per-s", "0")
    assert "no rate limit" in output
    bad = CliRunner().invoke(app_module.collector_cmd, ["--rate-limit-per-s", "-1"])
    assert bad.exit_code == 2 and "rate-limit-per-s" in bad.output
