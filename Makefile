# PolyStack: `make run` and `make test` take a fresh machine from nothing to running / passing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export DJANGO_SETTINGS_MODULE ?= polystack.settings.local
# KAFKA_BROKERS=3: the three-broker cluster (scripts/stack.sh), its topics with 3 replicas.
KAFKA_BROKERS ?= 1
export KAFKA_BROKERS
ifeq ($(KAFKA_BROKERS),3)
export KAFKA_BOOTSTRAP_SERVERS := 127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292
export KAFKA_REPLICATION_FACTOR := 3
endif

.PHONY: help venv stack-up stack-down stack-status migrate topics run test test-cluster chaos unit lint bench clean

help:
	@echo "make run           everything from nothing to the running system (Ctrl-C stops it)"
	@echo "make test          everything from nothing to a passing suite"
	@echo "make unit          the pure-logic tests and the import contract, in seconds, without the stack"
	@echo "make test-cluster  the three-broker cluster's tests (a broker killed under load)"
	@echo "make chaos         faults under load on a stack of its own, then the checker's table (CHAOS_ARGS=--short: the quick one)"
	@echo "make bench         benchmarks; prints figures and ratios"
	@echo "make stack-up | stack-down | stack-status   the local Kafka, PostgreSQL and Redis"
	@echo "make stack-up KAFKA_BROKERS=3              three Kafka brokers instead of one (also make run KAFKA_BROKERS=3)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

stack-up: venv
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down

stack-status:
	scripts/stack.sh status

migrate: stack-up
	$(PY) manage.py migrate --no-input

topics: stack-up
	$(PY) manage.py ensuretopics

run: migrate topics
	scripts/stack.sh prometheus
	@$(PY) manage.py prometheusconfig > .stack/prometheus.yml
	@$(PY) manage.py procfile --mail-sink --prometheus .stack/prometheus.yml --python $(abspath $(PY)) > .stack/Procfile
	@$(PY) manage.py demouser --url http://127.0.0.1:8000/
	@echo "Starting every role (Ctrl-C stops them all): $$(cut -d: -f1 .stack/Procfile | tr '\n' ' ')"
	$(VENV)/bin/honcho start -f .stack/Procfile -d .

lint: venv
	$(VENV)/bin/lint-imports --no-cache

unit: lint
	DJANGO_SETTINGS_MODULE=polystack.settings.test $(PY) -m pytest tests/unit

# Three workers (pytest-xdist) on two cores: most of the suite waits on processes, brokers and
# timeouts (with three the suite took 7:07 where two took 9:18, same machine, same commit). Each
# worker has a test database of its own and runs whole modules (tests/test_outages.py holds
# every test of the broker's one fault port). PYTEST_WORKERS=0 runs the suite in this process.
# The slowest tests are listed at the end: the first place to look when the suite grows slow.
PYTEST_WORKERS ?= 3

test: lint stack-up
	scripts/stack.sh browser
	scripts/stack.sh prometheus
	DJANGO_SETTINGS_MODULE=polystack.settings.test $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The three-broker cluster's tests (tests/cluster/): its own brokers on 19092, 19192, 19292,
# beside the one `make test` uses.
test-cluster: export KAFKA_BROKERS := 3
test-cluster: export KAFKA_BOOTSTRAP_SERVERS := 127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292
test-cluster: export KAFKA_REPLICATION_FACTOR := 3
test-cluster: lint stack-up
	DJANGO_SETTINGS_MODULE=polystack.settings.test $(PY) -m pytest -m cluster tests/cluster

# The chaos suite (python -m chaos): its own Kafka (three brokers), PostgreSQL and Redis under
# .stack/chaos/ on other ports, every role, clients through the API, faults one after another,
# then the checker. About six minutes; it stops everything it started. The short version
# (CHAOS_ARGS=--short, one broker) also runs in make test (tests/chaos/).
CHAOS_ARGS ?=
chaos: lint
	$(PY) -m chaos $(CHAOS_ARGS)

bench: stack-up
	DJANGO_SETTINGS_MODULE=polystack.settings.test $(PY) -m bench

clean: stack-down
	rm -rf .stack .cache $(VENV)
