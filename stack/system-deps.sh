#!/usr/bin/env bash
# Installs the Debian packages the local stack and the tests need, when they are missing:
# redis-server (the real Redis), maven (fetches the Kafka and Flink connector jars), chromium and
# chromium-driver (browser tests), and checks Java 17+. As root it installs with apt-get; otherwise
# it prints the command to run. Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ "${INTENTFLOW_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian's redis-server package starts a system service on port 6379; the stack runs its own.
    if [[ " ${need[*]} " == *" redis-server "* ]]; then
      (service redis-server stop || systemctl stop redis-server || true) >/dev/null 2>&1
      pkill -x redis-server 2>/dev/null || true
    fi
  else
    echo "[setup] missing: ${need[*]}. Install them, e.g.: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
if [ "${java_major%%.*}" -lt 17 ]; then
  echo "[setup] Java 17 or newer is needed (found ${java_major})" >&2
  exit 1
fi
