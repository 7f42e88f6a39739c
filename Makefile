# carewatch: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench airflow samples prodlock clean

# Virtual environment with the locked dependencies and the project itself (editable).
$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

setup: $(STAMP)

## make run: the whole monthly pipeline through Airflow on the embedded sample publications.
run: $(STAMP)
	$(BIN)/carewatch run

## make test: the whole test suite, on two workers (pytest-xdist; a test file stays on one worker:
## module fixtures such as the Airflow standalone server are started once). `.venv/bin/pytest` alone runs it serially.
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

## make bench: speed and memory figures (record-level hospital metrics, validation share).
bench: $(STAMP)
	$(BIN)/python bench/bench_hes.py
	$(BIN)/python bench/bench_validation.py

## make airflow: the Airflow UI on http://localhost:8080 with the project's DAGs.
airflow: $(STAMP)
	$(BIN)/carewatch airflow

## make samples: regenerate the committed embedded sample publications (deterministic).
samples: $(STAMP)
	$(BIN)/carewatch samples

## make prodlock: re-resolve constraints-production.txt, the Docker image's lock, in a fresh
## Python 3.11 venv: requirements-production.txt with the development lock, pip check, pip freeze.
## Run it whenever constraints.txt or a requirements*.txt file changes (its comment lines are kept).
## The packages only the production lock holds (celery, the providers' own...) keep their pins
## too, so a regeneration changes only what the change needs; PRODLOCK_HOLD= (empty) lets pip
## move them (an upgrade, to review as such).
PRODLOCK_PYTHON ?= python3.11
PRODLOCK_VENV ?= /tmp/carewatch-prodlock
PRODLOCK_HOLD ?= $(PRODLOCK_VENV)/held.txt
prodlock:
	rm -rf $(PRODLOCK_VENV)
	$(PRODLOCK_PYTHON) -m venv $(PRODLOCK_VENV)
	$(PRODLOCK_PYTHON) scripts/held_pins.py constraints-production.txt constraints.txt > $(PRODLOCK_VENV)/held.txt
	$(PRODLOCK_VENV)/bin/pip install --quiet -r requirements-production.txt -c constraints.txt $(if $(PRODLOCK_HOLD),-c $(PRODLOCK_HOLD))
	$(PRODLOCK_VENV)/bin/pip check
	{ grep '^#' constraints-production.txt; $(PRODLOCK_VENV)/bin/pip freeze --exclude carewatch; } > constraints-production.txt.new
	mv constraints-production.txt.new constraints-production.txt
	rm -rf $(PRODLOCK_VENV)

clean:
	rm -rf var
