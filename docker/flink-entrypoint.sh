#!/usr/bin/env bash
# Entry point of the intentflow Flink image (docker/flink.Dockerfile): put the project's Flink
# configuration in place, then hand over to the Flink image's own /docker-entrypoint.sh.
#
# Why a copy and not a mount at /opt/flink/conf/config.yaml: the Flink image's entrypoint rewrites
# $FLINK_HOME/conf/config.yaml in place on every start (it merges jobmanager.rpc.address, blob and
# query ports and FLINK_PROPERTIES into it). Through a read-write bind mount that would rewrite
# flink-conf/config.yaml of the checkout; through a read-only one the merge fails. So docker-compose.yml
# mounts flink-conf/ read-only at INTENTFLOW_FLINK_CONF_DIR and each container starts from a fresh copy.
#
# FLINK_PROPERTIES (set per service in docker-compose.yml) overrides the loopback addresses of
# flink-conf/config.yaml for the container network. It may use ${INTENTFLOW_CONTAINER_IP}, this
# container's address on that network (a TaskManager advertises it, so several can run side by side).
set -euo pipefail

conf_src="${INTENTFLOW_FLINK_CONF_DIR:-/opt/intentflow/flink-conf}"
if [[ ! -f "${conf_src}/config.yaml" ]]; then
    echo "intentflow: ${conf_src}/config.yaml not found (is flink-conf/ mounted?)" >&2
    exit 1
fi
cp "${conf_src}/config.yaml" "${FLINK_HOME}/conf/config.yaml"
for f in "${conf_src}"/log4j*.properties; do
    [[ -e "$f" ]] && cp "$f" "${FLINK_HOME}/conf/"
done

INTENTFLOW_CONTAINER_IP="$(hostname -i | awk '{print $1}')"
export INTENTFLOW_CONTAINER_IP

exec /docker-entrypoint.sh "$@"
