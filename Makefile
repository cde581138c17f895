# streamrec: `make demo` runs the main job end to end; `make test` runs the whole suite.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test install install-test prometheus wrk lint clean help

help:
	@echo "make demo   - create .venv, install, run the pipeline on the embedded broker, print a summary"
	@echo "make test   - install test needs (incl. Prometheus/promtool when possible) and run the suite"
	@echo "make lint   - ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py stream/models/_rules.c | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(TSTAMP): pyproject.toml setup.py stream/models/_rules.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP) $@

install: $(STAMP)
install-test: $(TSTAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo

# Prometheus, promtool, Alertmanager and amtool come from Debian's packages; install them when
# missing and we can (the end-to-end tests run the real Prometheus and Alertmanager).
prometheus:
	@if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
		&& command -v prometheus-alertmanager >/dev/null 2>&1; then \
		echo "prometheus: $$(prometheus --version 2>&1 | head -1)"; \
		echo "alertmanager: $$(prometheus-alertmanager --version 2>&1 | head -1)"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's prometheus and prometheus-alertmanager packages (prometheus, promtool, alertmanager, amtool)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null) \
			|| echo "WARNING: could not install prometheus; its tests will be skipped"; \
	else \
		echo "WARNING: prometheus/promtool missing and cannot be installed here; their tests will be skipped"; \
	fi

# wrk (Debian's package) drives `streamrec bench --http-load`; no test needs it to pass.
wrk:
	@if command -v wrk >/dev/null 2>&1; then \
		echo "wrk: $$(wrk --version 2>&1 | head -1)"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's wrk package (for streamrec bench --http-load)"; \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null \
			|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null)) \
			|| echo "WARNING: could not install wrk; bench --http-load will not run"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo -n apt-get install -y -qq wrk >/dev/null || echo "WARNING: could not install wrk"; \
	else \
		echo "WARNING: wrk missing and cannot be installed here; bench --http-load will not run"; \
	fi

test: $(TSTAMP) prometheus wrk
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(TSTAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
