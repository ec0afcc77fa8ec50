# syntax=docker/dockerfile:1
# The intentflow image: Flink (JobManager, TaskManager, `flink run`) with Python 3.11 and this project
# installed, used by every service of docker-compose.yml that runs our code (jobmanager, taskmanager,
# job, kafka-init, collector), so all of them run one Python environment.
#
# Built from the same files as the local stack (docs/docker.md):
#   * the Flink Kafka connector comes from stack/pom.xml (profile `flink`), resolved by Maven exactly as
#     `intentflow stack fetch` does, into the path the job hands to Flink as `pipeline.jars`
#     (intentflow.stack.KAFKA_CONNECTOR_JAR under INTENTFLOW_HOME=/app);
#   * Python packages: pyproject.toml's dependencies, pinned by constraints.txt;
#   * Flink configuration: flink-conf/ (mounted by docker-compose.yml, a copy is baked in as a default).
#
# FLINK_VERSION must equal the apache-flink pin of constraints.txt (the PyFlink client and the cluster
# must be the same release); tests/unit/test_compose_consistency.py checks it.
ARG FLINK_VERSION=2.2.1

# ---- the Flink Kafka connector, resolved from stack/pom.xml -------------------------------------------
FROM maven:3.9-eclipse-temurin-17 AS jars
COPY stack/pom.xml /build/pom.xml
RUN mvn -B -q -f /build/pom.xml -Pflink dependency:copy-dependencies \
        -DoutputDirectory=/jars -DincludeScope=runtime \
    && ls -l /jars
# the job's own Java operators (operators/java: micro-batcher, output splitter), as `intentflow stack fetch` builds them
COPY operators/java/pom.xml /build/operators/pom.xml
COPY operators/java/src /build/operators/src
RUN mvn -B -q -f /build/operators/pom.xml -DskipTests package && ls -l /build/operators/target/*.jar

# ---- the image ------------------------------------------------------------------------------------------
FROM flink:${FLINK_VERSION}-scala_2.12-java17

# Python 3.11 (pyproject: requires-python >=3.11,<3.12), built from source with a shared libpython:
# the base image (Ubuntu 24.04) ships Python 3.12 only, and Flink's thread mode embeds CPython in the
# TaskManager JVM (PEMJA), which loads libpython3.11.so.
ARG PYTHON_VERSION=3.11.7
USER root
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential ca-certificates curl libbz2-dev libffi-dev liblzma-dev libncurses-dev \
        libreadline-dev libsqlite3-dev libssl-dev uuid-dev zlib1g-dev; \
    rm -rf /var/lib/apt/lists/*; \
    cd /tmp; \
    curl -fsSLO "https://www.python.org/ftp/python/${PYTHON_VERSION}/Python-${PYTHON_VERSION}.tgz"; \
    tar -xzf "Python-${PYTHON_VERSION}.tgz"; \
    cd "Python-${PYTHON_VERSION}"; \
    ./configure --enable-shared --with-ensurepip=install LDFLAGS="-Wl,-rpath,/usr/local/lib" >/dev/null; \
    make -j"$(nproc)" >/dev/null; \
    make install >/dev/null; \
    ldconfig; \
    ln -sf python3 /usr/local/bin/python; \
    cd /; rm -rf /tmp/Python-*; \
    python3 -c "import sys, ssl, sqlite3, ctypes; assert sys.version_info[:2] == (3, 11), sys.version"

# flink-python sits in opt/ of the distribution; a cluster runs Python operators only with it in lib/
# (the local standalone cluster links it the same way: intentflow.stack.standalone_flink_env).
RUN cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/

# Python dependencies first (a layer that survives code edits): pyproject's list, pinned by constraints.txt.
WORKDIR /app
COPY pyproject.toml constraints.txt /app/
RUN set -eux; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt; \
    python3 -m pip install --no-cache-dir -c constraints.txt --upgrade pip wheel; \
    python3 -m pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

# The project itself (docker/flink.Dockerfile.dockerignore keeps .venv, .stack, node_modules, tests out).
COPY . /app
RUN python3 -m pip install --no-cache-dir --no-deps -c constraints.txt /app \
    && python3 -m compileall -q /app/jobs /app/operators /app/udfs /app/collector /app/intentflow /app/models

# INTENTFLOW_HOME=/app: intentflow.stack resolves .stack/ (connector jar, checkpoints) and flink-conf/ there.
# PYTHONPATH=/app: the modules are imported from /app, so models/, rules/ and web/ resolve next to them.
# PYFLINK_CLIENT_EXECUTABLE: the interpreter `flink run -py` starts for the job's client.
ENV INTENTFLOW_HOME=/app \
    INTENTFLOW_MODELS_DIR=/app/models \
    INTENTFLOW_WEB_ROOT=/app/web \
    PYTHONPATH=/app \
    PYFLINK_CLIENT_EXECUTABLE=python3 \
    PYTHONDONTWRITEBYTECODE=1

# The connector where the job looks for it (pipeline.jars), checkpoints and Flink client logs; the
# processes run as the image's `flink` user.
COPY --from=jars /jars/ /app/.stack/lib/flink/
COPY --from=jars /build/operators/target/intentflow-operators.jar /app/operators/java/target/intentflow-operators.jar
RUN set -eux; \
    mkdir -p /app/.stack/data/checkpoints /app/.stack/logs/flink /app/.stack/run; \
    chown -R flink:flink /app/.stack; \
    python3 -c "from intentflow import stack; [print(j) for j in (stack.KAFKA_CONNECTOR_JAR, stack.OPERATORS_JAR) if j.is_file() or exit(f'{j} missing: the Dockerfile and intentflow/stack.py disagree')]"

# The project's Flink configuration; docker-compose.yml mounts flink-conf/ over this copy.
COPY flink-conf/ /opt/intentflow/flink-conf/
COPY docker/flink-entrypoint.sh /opt/intentflow/flink-entrypoint.sh
COPY docker/submit-job.sh /opt/intentflow/submit-job.sh
RUN chmod 0755 /opt/intentflow/flink-entrypoint.sh /opt/intentflow/submit-job.sh

USER flink
ENTRYPOINT ["/opt/intentflow/flink-entrypoint.sh"]
CMD ["help"]
