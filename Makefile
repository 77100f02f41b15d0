# Rogatory: every set-up step lives here, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
PYTEST_ARGS ?=

.PHONY: all venv proto demo test lint typecheck layers bench clean kafka-up kafka-down

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

demo: $(STAMP)
	$(VENV)/bin/rogatory demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check broker nodes tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# A real Apache Kafka (KRaft) on loopback, 127.0.0.1:9092 and up (docs/kafka.md):
# `make kafka-up KAFKA_BROKERS=3` for three brokers, KAFKA_DIR for another cluster directory,
# KAFKA_ARGS=--fresh to wipe the one in KAFKA_DIR first.
KAFKA_DIR     ?= .kafka
KAFKA_BROKERS ?= 1

kafka-up: $(STAMP)
	$(PY) scripts/kafka start --dir $(KAFKA_DIR) --brokers $(KAFKA_BROKERS) $(KAFKA_ARGS)

kafka-down:
	$(PY) scripts/kafka stop --dir $(KAFKA_DIR)
