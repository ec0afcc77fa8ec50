"""docker-compose.yml and docker/ agree with the local stack (intentflow.services, operators.layout) by construction.

No Docker here: the files are parsed (PyYAML, plain text) and compared with the settings the local
stack uses: ports, broker/Redis/Flink config files, topic creation, the connector jar of stack/pom.xml,
the Python pins of constraints.txt, the JVM environment of ``flink_process_env``. docs/docker.md says
what differs between the two (container network addresses) and why; every such difference is listed
here explicitly, so anything else that drifts fails.
"""
from __future__ import annotations

import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import pytest
import yaml

from intentflow.services import jars
from intentflow.services.flink_cluster import FLINK_REST_PORT
from intentflow.services.kafka_broker import KAFKA_CONTROLLER_PORT, KAFKA_PORT
from intentflow.services.redis_server import REDIS_PORT
from operators import layout
from udfs.config import TOPIC_PARTITIONS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "flink.Dockerfile"
ENTRYPOINT = ROOT / "docker" / "flink-entrypoint.sh"
#: the project root inside the intentflow image (INTENTFLOW_HOME)
APP = PurePosixPath("/app")
FLINK_SERVICES = ("jobmanager", "taskmanager", "job")
#: services that run this project's Python code in the intentflow image
PYTHON_SERVICES = ("kafka-init", "collector", *FLINK_SERVICES)

#: Broker keys that differ from stack/kafka/server.properties in the container network (docs/docker.md).
KAFKA_NETWORK_KEYS = {"listeners", "advertised.listeners", "listener.security.protocol.map", "log.dirs"}
#: Variables the apache/kafka image gives a default when unset (its /etc/kafka/docker/configureDefaults)
#: and appends to the mounted server.properties, where they would silently win over the file's values.
KAFKA_IMAGE_DEFAULTS = {
    "CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_PROCESS_ROLES",
    "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_LOG_DIRS",
}
#: KAFKA_* variables that are JVM/launcher settings, not broker properties.
KAFKA_NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_JMX_OPTS",
                        "KAFKA_LOG4J_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_VERSION"}
#: Redis settings overridden on the command line for the container network (docs/docker.md).
REDIS_NETWORK_KEYS = {"bind", "protected-mode"}
LOOPBACK = {"127.0.0.1", "localhost"}
#: Monitoring services of the compose stack only (the local stack has none): their published ports
#: (Prometheus' and Grafana's own defaults).
MONITORING_PORTS = {"prometheus": 9090, "grafana": 3000}


# --------------------------------------------------------------------------- parsing helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service(compose: dict, name: str) -> dict:
    assert name in compose["services"], f"docker-compose.yml has no service {name!r}"
    return compose["services"][name]


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    out = {}
    for key, value in env.items():
        value = str(value)
        # compose interpolates ${VAR} from the host's environment; `$$` is a literal `$`
        assert "$" not in value.replace("$$", ""), f"{key}={value}: host-dependent interpolation"
        out[key] = value.replace("$$", "$")
    return out


def argv_of(svc: dict) -> list[str]:
    def as_list(value) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    return as_list(svc.get("entrypoint")) + as_list(svc.get("command"))


def published(svc: dict) -> list[tuple[str, int, int]]:
    """``(host ip, host port, container port)`` of each ``ports`` entry."""
    out = []
    for entry in svc.get("ports", []):
        parts = str(entry).split(":")
        assert len(parts) == 3, f"publish {entry!r} with an explicit host address"
        out.append((parts[0], int(parts[1]), int(parts[2].split("/")[0])))
    return out


def mounts(svc: dict) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode) of each volume entry."""
    out = {}
    for entry in svc.get("volumes", []):
        parts = str(entry).split(":")
        out[parts[1]] = (parts[0], parts[2] if len(parts) > 2 else "rw")
    return out


def repo_file(source: str) -> Path:
    assert source.startswith("./"), f"{source} is not a path of the checkout"
    return (ROOT / source).resolve()


def properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def kafka_env_to_property(name: str) -> str:
    """The apache/kafka image's mapping (docker/examples/README.md): ``_``->``.``, ``__``->``_``, ``___``->``-``."""
    return name.removeprefix("KAFKA_").lower().replace("_", ".").replace("...", "-").replace("..", "_")


def kafka_effective(svc: dict) -> dict[str, str]:
    """The broker config the container runs: the mounted file, then the KAFKA_* variables appended."""
    source, _ = mounts(svc)["/mnt/shared/config/server.properties"]
    config = properties(repo_file(source))
    for name, value in env_of(svc).items():
        if name.startswith("KAFKA_") and name not in KAFKA_NOT_PROPERTIES:
            config[kafka_env_to_property(name)] = value
    return config


def listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        name, rest = item.split("://")
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def flatten(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: str(node)}


def flink_conf() -> dict[str, str]:
    return flatten(yaml.safe_load((layout.FLINK_CONF_DIR / "config.yaml").read_text()))


def flink_properties(svc: dict) -> dict[str, str]:
    """FLINK_PROPERTIES as the Flink image's entrypoint reads it (``key: value`` lines)."""
    out = {}
    for line in env_of(svc).get("FLINK_PROPERTIES", "").splitlines():
        if line.strip():
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def dockerfile_args() -> dict[str, str]:
    return dict(rest.split("=", 1) for kw, rest in dockerfile() if kw == "ARG" and "=" in rest)


def container_path(host_path: Path) -> str:
    """Where a path of the checkout is in the image (the checkout is copied to /app)."""
    return str(APP / host_path.resolve().relative_to(layout.ROOT.resolve()))


def pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def kafka_bootstrap_for_containers(compose: dict) -> str:
    """The advertised listener of the broker whose host is the kafka service itself."""
    advertised = listeners(kafka_effective(service(compose, "kafka"))["advertised.listeners"])
    inside = [f"{host}:{port}" for host, port in advertised.values() if host == "kafka"]
    assert len(inside) == 1, f"one listener must be advertised as kafka:<port> for containers: {advertised}"
    return inside[0]


# --------------------------------------------------------------------------- ports


def test_host_ports_are_the_local_stack_ports(compose):
    from collector.app import collector_cmd

    collector_port = next(p.default for p in collector_cmd.params if p.name == "port")
    expected = {"kafka": KAFKA_PORT, "redis": REDIS_PORT, "jobmanager": FLINK_REST_PORT,
                "collector": collector_port}
    for name, port in expected.items():
        pubs = published(service(compose, name))
        assert [(host_port, container_port) for _, host_port, container_port in pubs] == [(port, port)], name
        # loopback only, as the local stack binds
        assert {ip for ip, _, _ in pubs} == {"127.0.0.1"}, name
    for name, port in MONITORING_PORTS.items():
        assert published(service(compose, name)) == [("127.0.0.1", port, port)], name
    exposed = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert exposed == set(expected) | set(MONITORING_PORTS), "only the local stack's and monitoring ports are published"


def test_published_ports_are_where_the_services_listen(compose):
    kafka = kafka_effective(service(compose, "kafka"))
    host_listeners = {name: hp for name, hp in listeners(kafka["advertised.listeners"]).items() if hp[0] in LOOPBACK}
    assert list(host_listeners.values()) == [("127.0.0.1", KAFKA_PORT)]
    (host_listener,) = host_listeners
    assert listeners(kafka["listeners"])[host_listener][1] == KAFKA_PORT
    # the same listener names and ports as the local stack's broker (only the addresses differ)
    local = properties(ROOT / "stack" / "kafka" / "server.properties")
    for key in ("listeners", "advertised.listeners"):
        for name, (_, port) in listeners(local[key]).items():
            assert listeners(kafka[key])[name][1] == port, (key, name)

    redis_conf = properties_space(repo_file(mounts(service(compose, "redis"))["/usr/local/etc/redis/redis.conf"][0]))
    assert int(redis_conf["port"]) == REDIS_PORT

    assert int(flink_conf()["rest.port"]) == FLINK_REST_PORT

    collector_argv = argv_of(service(compose, "collector"))
    assert collector_argv[collector_argv.index("--port") + 1] == str(stack_port(compose, "collector"))


def stack_port(compose: dict, name: str) -> int:
    return published(service(compose, name))[0][2]


# --------------------------------------------------------------------------- kafka


def test_kafka_runs_server_properties_with_only_network_overrides(compose):
    kafka = service(compose, "kafka")
    assert kafka["image"] == "apache/kafka:4.1.1"
    source, mode = mounts(kafka)["/mnt/shared/config/server.properties"]
    assert repo_file(source) == (ROOT / "stack" / "kafka" / "server.properties").resolve()
    assert mode == "ro"

    env = env_of(kafka)
    missing = KAFKA_IMAGE_DEFAULTS - set(env)
    assert not missing, f"the image would append its own defaults for {sorted(missing)}"

    file_config = properties(repo_file(source))
    effective = kafka_effective(kafka)
    changed = {k for k in effective if effective[k] != file_config.get(k)}
    # log.dirs is set on the command line by the local stack (not in the file), here by KAFKA_LOG_DIRS
    assert changed <= KAFKA_NETWORK_KEYS, f"differs from server.properties: {sorted(changed - KAFKA_NETWORK_KEYS)}"
    assert effective["log.dirs"] in mounts(kafka), "log.dirs must be the mounted data volume"
    # KRaft combined, node 1, controller port of the local stack
    assert effective["process.roles"] == "broker,controller" and effective["node.id"] == "1"
    assert listeners(effective["listeners"])["CONTROLLER"][1] == KAFKA_CONTROLLER_PORT


def test_kafka_listeners_serve_host_and_containers(compose):
    kafka = kafka_effective(service(compose, "kafka"))
    bound, advertised = listeners(kafka["listeners"]), listeners(kafka["advertised.listeners"])
    protocols = dict(item.split(":") for item in kafka["listener.security.protocol.map"].split(","))
    assert set(bound) <= set(protocols)
    assert set(advertised) == set(bound) - {kafka["controller.listener.names"]}
    for name, (host, _) in advertised.items():
        assert bound[name][0] == "0.0.0.0", f"{name} must listen on all interfaces of the container"
    assert kafka["inter.broker.listener.name"] in advertised
    assert kafka_bootstrap_for_containers(compose).startswith("kafka:")


def test_topics_are_created_by_intentflow_stack_topics(compose, monkeypatch):
    """kafka-init runs the local stack's own command; run it here against a recording admin client."""
    import kafka.admin
    from click.testing import CliRunner

    from intentflow.cli import main

    init = service(compose, "kafka-init")
    argv = argv_of(init)
    assert argv[:3] == ["intentflow", "stack", "topics"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    env = env_of(init)
    assert env["INTENTFLOW_KAFKA_BOOTSTRAP"] == kafka_bootstrap_for_containers(compose)

    seen: dict = {"topics": []}

    class RecordingAdmin:
        def __init__(self, bootstrap_servers, **_):
            seen["bootstrap"] = bootstrap_servers

        def list_topics(self):
            return []

        def create_topics(self, topics):
            seen["topics"].extend(topics)

        def close(self):
            pass

    monkeypatch.setattr(kafka.admin, "KafkaAdminClient", RecordingAdmin)
    monkeypatch.delenv("INTENTFLOW_TOPIC_PREFIX", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    assert seen["bootstrap"] == env["INTENTFLOW_KAFKA_BOOTSTRAP"]
    assert {t.name: t.num_partitions for t in seen["topics"]} == TOPIC_PARTITIONS
    assert all(t.topic_configs == {"message.timestamp.type": "LogAppendTime"} for t in seen["topics"])


# --------------------------------------------------------------------------- redis


def properties_space(path: Path) -> dict[str, str]:
    """redis.conf: ``key value`` lines."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_redis_runs_stack_redis_conf_with_only_network_overrides(compose):
    redis = service(compose, "redis")
    assert str(redis["image"]).split(":")[0] == "redis" and str(redis["image"]).split(":")[1].startswith("7")
    target = "/usr/local/etc/redis/redis.conf"
    source, mode = mounts(redis)[target]
    assert repo_file(source) == (ROOT / "stack" / "redis" / "redis.conf").resolve()
    assert mode == "ro"

    argv = argv_of(redis)
    assert argv[:2] == ["redis-server", target]
    overrides = dict(zip(argv[2::2], argv[3::2]))
    assert all(k.startswith("--") for k in overrides)
    overridden = {k.removeprefix("--") for k in overrides}
    assert overridden <= REDIS_NETWORK_KEYS, f"redis.conf settings overridden: {sorted(overridden)}"
    conf = properties_space(repo_file(source))
    assert overridden <= set(conf), "an override must replace a setting of redis.conf"


# --------------------------------------------------------------------------- flink


def test_flink_conf_is_the_mounted_config(compose):
    script = ENTRYPOINT.read_text()
    default_dir = re.search(r'INTENTFLOW_FLINK_CONF_DIR:-([^}]+)}', script).group(1)
    assert 'cp "${conf_src}/config.yaml" "${FLINK_HOME}/conf/config.yaml"' in script
    copies = [rest.split() for kw, rest in dockerfile() if kw == "COPY"]
    assert ["flink-conf/", default_dir + "/"] in copies, "the image's default config is flink-conf/"
    assert ["docker/flink-entrypoint.sh", "/opt/intentflow/flink-entrypoint.sh"] in copies
    assert ("ENTRYPOINT", '["/opt/intentflow/flink-entrypoint.sh"]') in dockerfile()

    for name in FLINK_SERVICES:
        svc = service(compose, name)
        conf_dir = env_of(svc)["INTENTFLOW_FLINK_CONF_DIR"]
        source, mode = mounts(svc)[conf_dir]
        assert repo_file(source) == layout.FLINK_CONF_DIR.resolve() and mode == "ro", name
        # the Flink image's entrypoint rewrites /opt/flink/conf/config.yaml: nothing may be mounted there
        assert not [t for t in mounts(svc) if t.startswith("/opt/flink/conf")], name


def test_flink_properties_only_replace_loopback_addresses(compose):
    conf = flink_conf()
    loopback_keys = {k for k, v in conf.items() if v in LOOPBACK}
    overridden: set[str] = set()
    for name in FLINK_SERVICES:
        props = flink_properties(service(compose, name))
        assert props, f"{name} sets no FLINK_PROPERTIES"
        assert set(props) <= loopback_keys, f"{name} overrides more than loopback addresses: {props}"
        for key, value in props.items():
            if key.endswith("bind-host") or key.endswith("bind-address"):
                assert value == "0.0.0.0", (name, key)
            elif key in ("jobmanager.rpc.address", "rest.address"):
                assert value == "jobmanager" and "jobmanager" in compose["services"], (name, key)
        overridden |= set(props)
    for name in ("jobmanager", "taskmanager"):
        assert env_of(service(compose, name))["JOB_MANAGER_RPC_ADDRESS"] == "jobmanager"
    assert flink_properties(service(compose, "taskmanager"))["taskmanager.host"] == "${INTENTFLOW_CONTAINER_IP}"
    assert "export INTENTFLOW_CONTAINER_IP" in ENTRYPOINT.read_text()
    assert overridden == loopback_keys, f"left on loopback: {sorted(loopback_keys - overridden)}"
    assert argv_of(service(compose, "jobmanager")) == ["jobmanager"]
    assert argv_of(service(compose, "taskmanager")) == ["taskmanager"]


def test_flink_jvm_environment_matches_flink_process_env(compose, monkeypatch, tmp_path):
    """PYTHONPATH of the Flink containers = intentflow.layout.flink_process_env with /app as the root."""
    monkeypatch.setattr(layout, "LOGS", tmp_path)  # flink_process_env creates LOGS/flink
    monkeypatch.delenv("PYTHONPATH", raising=False)
    host_parts = layout.flink_process_env()["PYTHONPATH"].split(":")
    python = ".".join(dockerfile_args()["PYTHON_VERSION"].split(".")[:2])
    expected = [f"/usr/local/lib/python{python}/site-packages" if part == layout.python_site_packages()
                else container_path(Path(part)) for part in host_parts]
    for name in FLINK_SERVICES:
        env = env_of(service(compose, name))
        assert env["PYTHONPATH"].split(":") == expected, name
        assert str(APP / "operators" / "embedded_site") in env["PYTHONPATH"].split(":")


def test_checkpoints_are_shared_where_the_job_puts_them(compose):
    target = container_path(layout.DATA / "checkpoints")
    sources = set()
    for name in FLINK_SERVICES:
        source, mode = mounts(service(compose, name))[target]
        assert mode == "rw" and not source.startswith("."), name
        sources.add(source)
    assert len(sources) == 1 and sources <= set(compose["volumes"])


def test_job_is_submitted_to_the_cluster(compose):
    import inspect

    from jobs.personalization import job_cmd, run

    job = service(compose, "job")
    argv = argv_of(job)
    # docker/submit-job.sh: `flink run "$@"` unless the job (by its default name) is already running
    assert argv[0] == "/opt/intentflow/submit-job.sh"
    assert ["docker/submit-job.sh", argv[0]] in [rest.split() for kw, rest in dockerfile() if kw == "COPY"]
    submit = (ROOT / "docker" / "submit-job.sh").read_text()
    assert 'exec flink run "$@"' in submit
    default_name = re.search(r'INTENTFLOW_JOB_NAME:-([^}]+)}', submit).group(1)
    assert default_name == inspect.signature(run).parameters["job_name"].default
    assert "INTENTFLOW_JOB_NAME" not in env_of(job)
    argv = ["flink", "run", *argv[1:]]
    assert argv[argv.index("-m") + 1] == f"jobmanager:{FLINK_REST_PORT}"
    script = argv[argv.index("-py") + 1]
    assert (layout.ROOT / PurePosixPath(script).relative_to(APP)) == ROOT / "jobs" / "personalization.py"
    assert argv[argv.index("-pyexec") + 1] == "python3"
    # what follows the Flink options are options of jobs/personalization.py: click must accept them
    job_args = argv[argv.index("-pyclientexec") + 2:]
    ctx = job_cmd.make_context("job", list(job_args))
    rules = PurePosixPath(ctx.params["rules_file"])
    assert (layout.ROOT / rules.relative_to(APP)).is_file()
    deps = job["depends_on"]
    assert deps["kafka-init"]["condition"] == "service_completed_successfully"
    assert deps["jobmanager"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"


def test_collector_serves_on_all_container_interfaces(compose):
    from collector.app import collector_cmd

    argv = argv_of(service(compose, "collector"))
    assert argv[:2] == ["intentflow", "collector"]
    ctx = collector_cmd.make_context("collector", argv[2:])
    assert ctx.params["host"] == "0.0.0.0"
    assert ctx.params["port"] == published(service(compose, "collector"))[0][2]


def test_python_parts_point_at_the_containers(compose):
    redis_port = properties_space(ROOT / "stack" / "redis" / "redis.conf")["port"]
    for name in PYTHON_SERVICES:
        svc = service(compose, name)
        env = env_of(svc)
        assert env["INTENTFLOW_KAFKA_BOOTSTRAP"] == kafka_bootstrap_for_containers(compose), name
        assert env["INTENTFLOW_REDIS_URL"] == f"redis://redis:{redis_port}/0", name
        assert "redis" in compose["services"]
        assert env.get("INTENTFLOW_FLINK_REST") == f"http://jobmanager:{FLINK_REST_PORT}", name
        assert "INTENTFLOW_TOPIC_PREFIX" not in env, name
        assert svc["image"] == service(compose, "jobmanager")["image"], "one image for all Python parts"
        assert svc["build"]["dockerfile"] == "docker/flink.Dockerfile", name
        assert (ROOT / svc["build"]["context"]).resolve() == ROOT


# --------------------------------------------------------------------------- the image


def test_connector_jar_comes_from_stack_pom(monkeypatch, tmp_path):
    """The image resolves the connector with the same Maven call as ``intentflow stack fetch``, into the
    folder the job hands to Flink as pipeline.jars."""
    pom = ET.parse(ROOT / "stack" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = pom.find("m:properties/m:flink.kafka.connector.version", ns).text
    assert jars.KAFKA_CONNECTOR_JAR.name == f"flink-sql-connector-kafka-{version}.jar"

    # what fetch_jars runs (recorded, not run)
    calls: list[list[str]] = []
    monkeypatch.setattr(jars, "LIB", tmp_path)
    monkeypatch.setattr(jars, "KAFKA_CONNECTOR_JAR", tmp_path / "flink" / jars.KAFKA_CONNECTOR_JAR.name)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "kafka_2.13-4.1.1.jar").touch()
    monkeypatch.setattr(jars.shutil, "which", lambda name: f"/usr/bin/{name}")

    def fake_run(cmd, **_):
        calls.append(cmd)
        jars.KAFKA_CONNECTOR_JAR.touch()
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(jars.subprocess, "run", fake_run)
    jars.fetch_jars(quiet=True)
    assert len(calls) == 1

    def normalized(cmd: list[str]) -> tuple[list[str], str]:
        args, pom_path = [], ""
        it = iter(cmd[1:])
        for arg in it:
            if arg == "-f":
                pom_path = next(it)
            elif arg != "-q" and not arg.startswith("-DoutputDirectory="):
                args.append(arg)
        return args, pom_path

    local_args, _ = normalized(calls[0])
    runs = [shlex.split(rest) for kw, rest in dockerfile() if kw == "RUN" and rest.startswith("mvn ")
            and "-Pflink" in rest]
    assert len(runs) == 1, "one mvn call for the connector in the Dockerfile"
    mvn = runs[0][: runs[0].index("&&")] if "&&" in runs[0] else runs[0]
    image_args, image_pom = normalized(mvn)
    assert image_args == local_args
    assert ["stack/pom.xml", image_pom] in [rest.split() for kw, rest in dockerfile() if kw == "COPY"]
    out_dir = next(a for a in mvn if a.startswith("-DoutputDirectory=")).split("=", 1)[1]
    # copied from the Maven stage to where the job looks for it (INTENTFLOW_HOME=/app)
    copy_from = [rest.split() for kw, rest in dockerfile() if kw == "COPY" and rest.startswith("--from=jars")]
    real_jar = layout.ROOT / ".stack" / "lib" / "flink" / f"flink-sql-connector-kafka-{version}.jar"
    assert ["--from=jars", out_dir.rstrip("/") + "/", container_path(real_jar.parent) + "/"] in copy_from


def test_operators_jar_is_built_as_intentflow_stack_builds_it(monkeypatch, tmp_path):
    """The image builds operators/java with the same Maven goals as ``intentflow stack fetch`` and puts the
    jar where the job hands it to Flink (pipeline.jars, intentflow.jars.OPERATORS_JAR)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(jars, "OPERATORS_JAR", tmp_path / "intentflow-operators.jar")
    monkeypatch.setattr(jars.shutil, "which", lambda name: f"/usr/bin/{name}")

    def fake_run(cmd, **_):
        calls.append(cmd)
        jars.OPERATORS_JAR.touch()
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(jars.subprocess, "run", fake_run)
    jars.build_operators_jar(quiet=True)
    assert len(calls) == 1
    local_goals = [a for a in calls[0][1:] if a not in ("-q", "-B") and not a.startswith("/")
                   and a != "-f"]
    runs = [shlex.split(rest) for kw, rest in dockerfile() if kw == "RUN" and "operators/pom.xml" in rest]
    assert len(runs) == 1, "one mvn call for operators/java in the Dockerfile"
    mvn = runs[0][: runs[0].index("&&")]
    image_goals = [a for a in mvn[1:] if a not in ("-q", "-B", "-f") and not a.startswith("/")]
    assert image_goals == local_goals
    copies = [rest.split() for kw, rest in dockerfile() if kw == "COPY"]
    assert ["operators/java/src", "/build/operators/src"] in copies
    real = layout.ROOT / "operators" / "java" / "target" / "intentflow-operators.jar"
    assert ["--from=jars", "/build/operators/target/intentflow-operators.jar", container_path(real)] in copies


def test_flink_image_matches_pyflink_and_java(compose):
    args = dockerfile_args()
    assert args["FLINK_VERSION"] == pinned("apache-flink")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"apache-flink=={args['FLINK_VERSION']}" in project["dependencies"]
    froms = [rest.split() for kw, rest in dockerfile() if kw == "FROM"]
    assert ["flink:${FLINK_VERSION}-scala_2.12-java17"] in froms  # Java 17, as the local stack needs
    runs = [rest for kw, rest in dockerfile() if kw == "RUN"]
    assert any(r.startswith("cp /opt/flink/opt/flink-python-") and "/opt/flink/lib/" in r for r in runs)

    from packaging.specifiers import SpecifierSet

    assert args["PYTHON_VERSION"] in SpecifierSet(project["requires-python"])
    env_line = " ".join(rest for kw, rest in dockerfile() if kw == "ENV")
    assert f"INTENTFLOW_HOME={APP}" in env_line.split()


def test_python_packages_are_pinned_by_constraints_txt():
    instructions = dockerfile()
    installs = [rest for kw, rest in instructions if kw == "RUN" and "pip install" in rest]
    assert len(installs) >= 2
    for run in installs:
        for command in run.split(";"):
            if "pip install" in command:
                words = shlex.split(command.split("&&")[0])
                assert words[words.index("-c") + 1] == "constraints.txt", command
    # constraints.txt of the checkout, copied into the working directory of the installs
    workdir = [rest for kw, rest in instructions if kw == "WORKDIR"]
    assert workdir and workdir[-1] == str(APP)
    copies = [rest.split() for kw, rest in instructions if kw == "COPY"]
    assert any(c[-1].rstrip("/") == str(APP) and "constraints.txt" in c[:-1] for c in copies)
    # the dependency list is pyproject's, read at build time
    assert any("['project']['dependencies']" in rest for kw, rest in instructions if kw == "RUN")
    assert any(run.strip().startswith("python3 -m pip install") and f" {APP} " in f" {run} " for run in installs)


# --------------------------------------------------------------------------- monitoring


def test_prometheus_scrapes_the_collector_and_every_flink_reporter(compose):
    prom = service(compose, "prometheus")
    source, mode = mounts(prom)["/etc/prometheus/prometheus.yml"]
    assert mode == "ro"
    config = yaml.safe_load(repo_file(source).read_text())
    assert "--config.file=/etc/prometheus/prometheus.yml" in argv_of(prom)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    collector_port = stack_port(compose, "collector")
    assert jobs["collector"]["static_configs"][0]["targets"] == [f"collector:{collector_port}"]
    assert jobs["collector"].get("metrics_path", "/metrics") == "/metrics"
    # each Flink container runs one Flink process, which takes the first port of the reporter's range
    reporter = flink_conf()
    assert reporter["metrics.reporter.prom.factory.class"] == "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
    first_port = int(reporter["metrics.reporter.prom.port"].split("-")[0])
    assert jobs["flink-jobmanager"]["static_configs"][0]["targets"] == [f"jobmanager:{first_port}"]
    (sd,) = jobs["flink-taskmanager"]["dns_sd_configs"]
    assert sd["names"] == ["taskmanager"] and sd["port"] == first_port
    for name in ("collector", "jobmanager", "taskmanager"):
        assert name in compose["services"]


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard(compose):
    grafana = service(compose, "grafana")
    m = mounts(grafana)
    provisioning = repo_file(m["/etc/grafana/provisioning"][0])
    dashboards = repo_file(m["/var/lib/grafana/dashboards"][0])
    assert (dashboards / "intentflow.json").exists()
    (ds,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert ds["url"] == f"http://prometheus:{MONITORING_PORTS['prometheus']}" and ds["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "intentflow.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    import json

    dashboard = json.loads((dashboards / "intentflow.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {ds["uid"]}
