# intentflow — one command each for a fresh machine:
#   make demo   set up, start the local stack, replay real data through the job, show actions, stop
#   make test   set up, start what the tests need, run every test, stop
#   make chaos  set up, run faults (Redis, broker, collector down; poison; burst; TaskManager SIGKILL on
#               the standalone cluster) while traffic flows, on private Kafka/Redis instances, and write
#               docs/reliability.md
# Other targets: setup, up, down, status, flink-up, flink-down, bench, train, evaluate, clean.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
IF     := $(VENV)/bin/intentflow
PYTEST_ARGS ?=
DATA   ?= $(or $(INTENTFLOW_DATA_DIR),../shared/data)

.PHONY: setup venv system-deps jars web-deps up down status flink-up flink-down test demo bench chaos train evaluate clean

setup: system-deps venv jars web-deps

system-deps:
	bash stack/system-deps.sh

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
	  "intentflow needs Python 3.11 (PyFlink 2.2.1 and the pins in constraints.txt); $(PYTHON) is " + sys.version.split()[0] + \
	  ": install python3.11 or run make PYTHON=/path/to/python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[train,dev]'
	touch $@

venv: $(VENV)/.installed

jars: venv
	$(IF) stack fetch

# npm ci only when the lock file changed since the last install (it takes ~10 s even with nothing to do).
WEB_STAMP := web/node_modules/.installed
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web-deps: $(if $(wildcard web/package.json),$(WEB_STAMP))

up: setup
	$(IF) stack up

down:
	@if [ -x $(IF) ]; then $(IF) stack down; fi

# Prints each service (up/down, pids, address, log); exit 0 even when the stack is down.
status:
	@if [ -x $(IF) ]; then $(IF) stack status; else echo "not set up yet (no $(IF)): make setup"; fi

flink-up: setup
	$(IF) stack up --flink

flink-down:
	$(IF) stack flink-down

# Runs every test: the Java operators' tests (Flink's operator test harness, no services), then every
# Python test on the real stack; the stack is stopped afterwards even when a test fails.
test: up
	@rc=0; mvn -B -q -f operators/java/pom.xml test || rc=$$?; \
	if [ $$rc -eq 0 ]; then printf "\n[test] Java operators' tests passed (mvn test in operators/java)\n"; \
	  $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; fi; \
	$(MAKE) --no-print-directory down; exit $$rc

demo: up
	@rc=0; $(IF) demo || rc=$$?; $(MAKE) --no-print-directory down; exit $$rc

bench: up
	@rc=0; $(IF) bench || rc=$$?; $(MAKE) --no-print-directory down; exit $$rc

# Faults while paced traffic flows (intentflow/chaos.py): its own Kafka broker and Redis, the collector and
# the live job; writes docs/reliability.md and artifacts/chaos.json, exits 1 when a target is missed.
chaos: setup
	$(IF) chaos

# Train a new intent-model version from the OTTO sessions (models/intent-lr/<n>/); the running job
# picks it up within 5 s.
train: setup
	$(IF) train --otto $(DATA)/otto/test_resources_train.jsonl

# 10-fold evaluation on the UCI online-shoppers data set (models/intent-lr/EVALUATION.md).
evaluate: setup
	$(IF) evaluate

clean: down
	rm -rf .stack $(VENV) artifacts
