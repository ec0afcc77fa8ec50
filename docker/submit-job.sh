#!/usr/bin/env bash
# `flink run "$@"`, unless a job of the same name is already running on the cluster: the `job` service
# of docker-compose.yml is started again by every `docker compose up`, which must not submit a duplicate.
# The name is the default job name of jobs/personalization.py (run(..., job_name=...)).
set -euo pipefail

name="${INTENTFLOW_JOB_NAME:-intentflow-personalization}"
rest="${INTENTFLOW_FLINK_REST:-http://jobmanager:8081}"

if python3 -S - "$rest" "$name" <<'PY'
import json
import sys
import urllib.request

rest, name = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"{rest}/jobs/overview", timeout=10) as resp:
    jobs = json.load(resp)["jobs"]
active = {"INITIALIZING", "CREATED", "RUNNING", "RESTARTING"}
sys.exit(0 if any(j["name"] == name and j["state"] in active for j in jobs) else 1)
PY
then
    echo "intentflow: job '${name}' is already running on ${rest}; not submitting another"
    exit 0
fi
exec flink run "$@"
