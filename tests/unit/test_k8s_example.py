"""docs/kubernetes/flinkdeployment.yaml (Flink Kubernetes Operator) agrees with flink-conf/config.yaml,
docker-compose.yml and the job's CLI. No Kubernetes here: the files are parsed and compared."""
from __future__ import annotations

import yaml

from jobs.personalization import job_cmd
from tests.unit.test_compose_consistency import (COMPOSE, ROOT, dockerfile_args, env_of, flink_conf, pinned,
                                                 service)
from udfs.config import JobConfig

EXAMPLE = ROOT / "docs" / "kubernetes" / "flinkdeployment.yaml"
#: flink-conf keys the operator sets for its pods (addresses) or that the spec states as resources.
OPERATOR_SETS = {"jobmanager.bind-host", "jobmanager.rpc.address", "taskmanager.bind-host", "taskmanager.host",
                 "rest.address", "rest.bind-address"}
AS_RESOURCES = {"jobmanager.memory.process.size": "jobManager", "taskmanager.memory.process.size": "taskManager"}
#: Keys only the Kubernetes deployment has: where state lives on its volume, Kubernetes HA.
KUBERNETES_ONLY = {"execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "high-availability.type",
                   "high-availability.storageDir"}


def _spec() -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert doc["apiVersion"] == "flink.apache.org/v1beta1" and doc["kind"] == "FlinkDeployment"
    return doc["spec"]


def test_flink_configuration_is_flink_conf():
    spec = _spec()
    conf = flink_conf()
    example = spec["flinkConfiguration"]
    assert all(isinstance(v, str) for v in example.values()), "the operator takes string values"
    expected = {k: v for k, v in conf.items() if k not in OPERATOR_SETS and k not in AS_RESOURCES}
    got = {k: v for k, v in example.items() if k not in KUBERNETES_ONLY}
    norm = {"True": "true", "False": "false"}
    assert {k: norm.get(v, v) for k, v in got.items()} == {k: norm.get(v, v) for k, v in expected.items()}
    for key, part in AS_RESOURCES.items():
        assert spec[part]["resource"]["memory"] == conf[key], key
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        mount = spec["podTemplate"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
        assert example[key].startswith(f"file://{mount}/"), key
    port = conf["metrics.reporter.prom.port"].split("-")[0]
    ports = spec["podTemplate"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": int(port)} in ports


def test_image_environment_and_job_are_those_of_the_compose_stack():
    spec = _spec()
    compose = yaml.safe_load(COMPOSE.read_text())
    assert spec["image"] == compose["x-intentflow-image"]["image"]
    version = dockerfile_args()["FLINK_VERSION"]
    assert version == pinned("apache-flink")
    assert spec["flinkVersion"] == "v" + "_".join(version.split(".")[:2])
    assert spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{version}.jar"
    assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    env = {e["name"]: e["value"] for e in spec["podTemplate"]["spec"]["containers"][0]["env"]}
    compose_env = env_of(service(compose, "taskmanager"))
    for key in ("PYTHONPATH", "PYFLINK_PYTHON"):
        assert env[key] == compose_env[key], key
    assert {"INTENTFLOW_KAFKA_BOOTSTRAP", "INTENTFLOW_REDIS_URL"} <= set(env)


def test_job_arguments_are_options_of_the_job():
    args = _spec()["job"]["args"]
    assert args[:2] == ["-py", "/app/jobs/personalization.py"] and (ROOT / "jobs" / "personalization.py").exists()
    job_args = args[args.index("python3") + 1:]
    ctx = job_cmd.make_context("job", list(job_args))  # raises on an unknown option or a bad value
    assert ctx.params["max_parallelism"] == JobConfig.max_parallelism
    assert (ROOT / ctx.params["rules_file"].removeprefix("/app/")).exists()
    assert _spec()["job"]["upgradeMode"] == "savepoint" and _spec()["job"]["parallelism"] >= 1
