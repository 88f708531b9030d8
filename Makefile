# make run    set up (system packages, .venv, dependencies), migrate, publish the flow,
#             seed the demo, then serve on http://127.0.0.1:$(PORT) with the Huey worker
# make test   the same set-up, then ruff (lint + format check), mypy, the unit tier, the rest of pytest
# make help   everything else

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs as one bash script (traps, variables and `if` blocks span lines).
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PORT ?= 5000
WORKERS ?= 2
# Threads per gunicorn worker (gthread): a request waiting on PostgreSQL does not idle a process.
THREADS ?= 4
PYTHON ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := gzsb tests bench migrations
FLOW := flows/enrollment.yaml

export FLASK_APP := gzsb.app:create_app
# `make run` is a development server: the SMS outbox page (/dev/sms) shows the codes.
run: export SMS_DEV_PAGE := 1
run: export SESSION_COOKIE_SECURE := 0
# Development, said explicitly: the default keys in gzsb/config.py are accepted only then.
run: export GZSB_ENV := development

.PHONY: help setup system-packages deps run test unit typecheck lint fmt bench clean distclean

help:
	@echo "make run        set up everything, migrate, publish $(FLOW), seed the demo, serve on :$(PORT)"
	echo "make test       set up, then ruff, mypy (gzsb/workflow), pytest -m unit, the rest of pytest (PYTEST_ARGS=...)"
	echo "make unit       the fast unit tier only (no Flask app, no database)"
	echo "make typecheck  mypy on gzsb/workflow"
	echo "make lint       ruff check and format check only"
	echo "make fmt        ruff check --fix and ruff format"
	echo "make bench      python -m bench.run (BENCH_ARGS=...)"
	echo "make setup      system packages (apt-get, only what is missing), .venv, Python dependencies"
	echo "make clean      caches and generated files; make distclean also removes .venv and instance/"

# ------------------------------------------------------------------ set-up

setup: system-packages deps

# Debian/Ubuntu packages, installed only when missing (apt-get update at most once).
system-packages:
	@missing=()
	command -v dot >/dev/null 2>&1 || missing+=(graphviz)
	command -v wkhtmltopdf >/dev/null 2>&1 || missing+=(wkhtmltopdf)
	[ -x /usr/bin/chromium ] || missing+=(chromium)
	command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
	command -v fc-list >/dev/null 2>&1 || missing+=(fontconfig)
	# Not `grep -q`: it exits at the first match and pipefail would see fc-list's SIGPIPE.
	{ command -v fc-list >/dev/null 2>&1 && fc-list : family | grep -i 'Noto Sans CJK' >/dev/null; } || missing+=(fonts-noto-cjk)
	command -v $(PYTHON) >/dev/null 2>&1 || missing+=(python3)
	# Debian ships venv without ensurepip unless python3-venv is installed.
	if [ ! -x $(BIN)/python ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then
	  missing+=(python3-venv)
	fi
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi
	echo "==> installing missing system packages: $${missing[*]}"
	if ! command -v apt-get >/dev/null 2>&1; then
	  echo "apt-get not found: install $${missing[*]} by hand" >&2; exit 1
	fi
	sudo=""
	if [ "$$(id -u)" -ne 0 ]; then
	  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else echo "run as root to install $${missing[*]}" >&2; exit 1; fi
	fi
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$${missing[@]}"

$(BIN)/python: | system-packages
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python >= 3.11 is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1)); try make PYTHON=python3.11" >&2; exit 1; }
	echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV)

# Reinstalled whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "==> installing Python dependencies"
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

deps: $(STAMP)

# ------------------------------------------------------------------ run

run: setup
	@echo "==> database schema"
	$(BIN)/flask db upgrade
	echo "==> flow $(FLOW)"
	$(BIN)/flask flow publish $(FLOW)
	echo "==> demo data"
	$(BIN)/flask demo seed   # does nothing when the demo data is already there
	echo "==> Huey worker and web server"
	# Worker processes: each holds its own face model, and a job's time limit (SIGALRM) works there.
	# -f: a consumer killed while holding a periodic task's lock leaves it behind; flush at start.
	$(BIN)/huey_consumer gzsb.worker.tasks.huey -w $(WORKERS) -k process -f &
	consumer=$$!
	web=""
	# Whichever way this ends (Ctrl-C, kill, the server exiting), stop both.
	stop() { kill $$web $$consumer 2>/dev/null || true; wait 2>/dev/null || true; }
	trap stop EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	echo
	echo "    gzsb: http://127.0.0.1:$(PORT)/  (Ctrl-C stops the server and the worker)"
	echo "    demo accounts: README.md, 'Demo accounts' (password for all: Demo@2026gzsb)"
	echo
	# Started with & and waited for, so that the traps run as soon as a signal arrives
	# (bash defers traps until a foreground command returns); it still logs to the terminal.
	$(BIN)/gunicorn -w $(WORKERS) -k gthread --threads $(THREADS) -b 127.0.0.1:$(PORT) --access-logfile - 'gzsb.app:create_app()' &
	web=$$!
	wait -n $$web $$consumer  # either one stopping stops both

# ------------------------------------------------------------------ checks

# Cheapest first: lint, types of the engine, the unit tier (seconds, no Flask app), the rest.
test: setup
	@$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/pytest -m unit $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: PYTEST_ARGS selected no unit test
	$(BIN)/pytest -m "not unit" $(PYTEST_ARGS)

# Only the fast tier: `make unit` while editing the engine or steps.
unit: deps
	@$(BIN)/pytest -m unit $(PYTEST_ARGS)

typecheck: deps
	@$(BIN)/mypy

lint: deps
	@$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

fmt: deps
	@$(BIN)/ruff check --fix $(LINT_PATHS) || true
	$(BIN)/ruff format $(LINT_PATHS)

bench: setup
	@$(BIN)/python -m bench.run $(BENCH_ARGS)

# ------------------------------------------------------------------ cleaning

clean:
	@rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts bench/out build dist *.egg-info flow.svg
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# Also the virtualenv and the local database (instance/): a fresh start.
distclean: clean
	@rm -rf $(VENV) instance
