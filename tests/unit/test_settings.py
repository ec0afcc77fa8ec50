"""The one settings tree (udfs/settings.py): read once, validated whole, one prefix, nothing read at import."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from udfs.settings import (ENV_PREFIX, TOOLING_VARIABLES, VARIABLES, Settings, SettingsError, load_settings,
                           path_settings, unknown_variables)

ROOT = Path(__file__).resolve().parents[2]
#: Packages of the product (tooling: intentflow/ CLI, bench/, tests/).
PRODUCT = ("udfs", "connectors", "operators", "jobs", "collector", "models")


def test_defaults_build_the_whole_tree():
    s = load_settings({})
    assert isinstance(s, Settings)
    assert s.stack.kafka_bootstrap == "127.0.0.1:9092" and s.stack.redis_url == "redis://127.0.0.1:6379/0"
    assert s.collector.rate_limit_per_s == 20.0 and s.decision.timeout_s == 0.05
    assert s.edge.rules_file == s.paths.rules_file == s.decision.rules_file == ROOT / "rules" / "default.v1.json"
    assert s.job.window_ms == 10  # the job's defaults are in the tree too


def test_one_variable_moves_every_section_that_reads_it():
    s = load_settings({"INTENTFLOW_KAFKA_BOOTSTRAP": "k1:9093,k2:9093", "INTENTFLOW_TOPIC_PREFIX": "t-",
                       "INTENTFLOW_MODELS_DIR": "/m", "INTENTFLOW_RULES_FILE": "/r.json",
                       "INTENTFLOW_RATE_LIMIT_PER_S": "0", "INTENTFLOW_WRITE_KEYS": "web=a, partner=b"})
    assert s.collector.kafka_bootstrap == s.edge.kafka_bootstrap == "k1:9093,k2:9093"
    assert s.collector.topic_raw == "t-signals.raw" and s.edge.rules_topic == "t-rules"
    assert s.edge.models_root == s.paths.models_dir == Path("/m")
    assert s.decision.rules_file == s.edge.rules_file == Path("/r.json")
    assert s.collector.rate_limit_per_s == 0.0 and s.collector.write_keys == {"web": "a", "partner": "b"}


def test_every_problem_is_reported_at_once_naming_its_variable():
    env = {"INTENTFLOW_RATE_LIMIT_PER_S": "fast", "INTENTFLOW_RATE_BURST": "0",
           "INTENTFLOW_DECISION_TIMEOUT_S": "30", "INTENTFLOW_KAFKA_BOOTSTRAP": "nohost",
           "INTENTFLOW_WRITE_KEYS": "web"}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 5, text  # two parse errors, then the stack, collector and decision ranges
    assert "INTENTFLOW_RATE_LIMIT_PER_S='fast'" in text and "INTENTFLOW_WRITE_KEYS='web'" in text
    assert "kafka_bootstrap must be a comma-separated host:port list" in text
    assert "rate_burst must be >= 1, got 0" in text and "INTENTFLOW_RATE_BURST" in text
    assert "timeout_s must be within (0, 10] s, got 30.0" in text and "INTENTFLOW_DECISION_TIMEOUT_S" in text


@pytest.mark.parametrize("env, message", [
    ({"INTENTFLOW_REDIS_URL": "http://127.0.0.1:6379"}, "redis_url must start with redis://"),
    ({"INTENTFLOW_FLINK_REST": "127.0.0.1:8081"}, "flink_rest must be an http"),
    ({"INTENTFLOW_KAFKA_BOOTSTRAP": "h:99999"}, "host:port list"),
    ({"INTENTFLOW_RATE_LIMIT_PER_S": "-1"}, "rate_limit_per_s must be >= 0"),
    ({"INTENTFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "sasl"),
])
def test_ranges_are_checked(env, message):
    with pytest.raises(SettingsError, match=re.compile(message, re.I)):
        load_settings(env)


def test_a_misspelt_variable_is_named_with_the_closest_setting():
    env = {"INTENTFLOW_RATE_LIMT_PER_S": "5", "INTENTFLOW_KAFKA_BOOTSTRAP": "h:1", "INTENTFLOW_SKIP_BROWSER": "1",
           "INTENTFLOW_NOTHING_LIKE_IT": "x", "OTHER": "y"}
    assert unknown_variables(env) == [("INTENTFLOW_NOTHING_LIKE_IT", None),
                                      ("INTENTFLOW_RATE_LIMT_PER_S", "INTENTFLOW_RATE_LIMIT_PER_S")]


def test_path_settings_alone():
    assert path_settings({"INTENTFLOW_DATA_DIR": "/d"}).data_dir == Path("/d")
    assert path_settings({}).home == ROOT


def _product_files():
    for package in PRODUCT:
        yield from (p for p in (ROOT / package).rglob("*.py") if "embedded_site" not in p.parts)


def test_every_intentflow_variable_the_code_reads_is_a_setting_or_tooling():
    known = {ENV_PREFIX + v.name for v in VARIABLES} | {ENV_PREFIX + n for n in TOOLING_VARIABLES}
    used = set()
    for folder in (*PRODUCT, "intentflow", "bench", "tests", "docker", "deploy", "stack", ".ci"):
        for p in (ROOT / folder).rglob("*"):
            if (p.is_file() and p.suffix in (".py", ".sh", ".yml", ".yaml", "") and "node_modules" not in p.parts
                    and p != Path(__file__).resolve()):
                used |= set(re.findall(r"\bINTENTFLOW_[A-Z0-9_]*[A-Z0-9]\b", p.read_text(errors="ignore")))
    used -= {"INTENTFLOW_KAFKA"}  # a prefix in a comment, not a variable
    assert used and used <= known, sorted(used - known)


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    missing = [ENV_PREFIX + v.name for v in VARIABLES if f"`{ENV_PREFIX}{v.name}`" not in readme]
    assert not missing, missing


def test_no_product_module_reads_the_environment_at_import_time():
    """``os.environ`` / ``os.getenv`` only inside functions (and not in default argument values)."""
    offenders = []
    for path in _product_files():
        tree = ast.parse(path.read_text())
        inside = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                body = node.body if isinstance(node.body, list) else [node.body]
                for stmt in body:
                    inside |= {id(n) for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and id(node) not in inside:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_scanner_above_finds_a_module_level_read(tmp_path):
    # the check must be able to fail: the same walk over a module that reads at import
    tree = ast.parse("import os\nX = os.environ.get('A')\ndef f():\n    return os.environ['B']\n")
    inside = {id(n) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for s in node.body for n in ast.walk(s)}
    found = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "environ" and id(n) not in inside]
    assert found == [2]


def test_the_model_in_force_was_trained_behind_the_jobs_noise_filter_and_a_different_one_is_refused(tmp_path):
    from udfs.model_manifest import ModelError, ModelManifest
    from udfs.noise import DEFAULT_NOISE_CONFIG

    src = ROOT / "models" / "intent-lr" / "1" / "manifest.json"
    raw = json.loads(src.read_text())
    assert raw["noise_config"] == dataclasses.asdict(DEFAULT_NOISE_CONFIG)
    ModelManifest.load(src)  # the shipped model: same filter
    raw["noise_config"]["click_debounce_ms"] = 250
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"different noise filter than the job's: click_debounce_ms 250 \(job 500\)"):
        ModelManifest.load(tmp_path)


def test_the_collector_and_the_job_refuse_a_bad_environment_with_every_problem_and_name_a_typo():
    from click.testing import CliRunner

    from collector.app import collector_cmd
    from jobs.personalization import job_cmd

    env = {"INTENTFLOW_RATE_BURST": "0", "INTENTFLOW_FLINK_REST": "nope", "INTENTFLOW_RATE_LIMT_PER_S": "1"}
    for cmd in (collector_cmd, job_cmd):
        res = CliRunner().invoke(cmd, [], env=env)
        assert res.exit_code == 1, (cmd.name, res.output)
        assert "rate_burst must be >= 1, got 0" in res.output and "flink_rest must be an http(s) URL" in res.output
        assert "Traceback" not in res.output
    res = CliRunner().invoke(job_cmd, [], env=env)
    assert "INTENTFLOW_RATE_LIMT_PER_S is not an intentflow setting; did you mean INTENTFLOW_RATE_LIMIT_PER_S?" in res.output
