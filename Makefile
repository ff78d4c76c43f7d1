# Two commands for a fresh machine (Python 3.11 + make):
#   make run    set up .venv and the bundled engine, then start the app (python launch.py)
#   make test   set up .venv (with test tools) and the engine, then run ruff, the import contracts and the tests
# Both are idempotent: a second run skips every step that is already done.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint bench clean-venv chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install only when the declared dependencies change.
$(VENV)/.app-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check --progress-bar off -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check --progress-bar off -e '.[test]'
	touch $@ $(VENV)/.app-installed

run: $(VENV)/.app-installed
	$(BIN)/python launch.py $(ARGS)

# The browser tests drive Debian's chromium (never a downloaded browser); installed once when missing.
chromium:
	@test -x /usr/bin/chromium || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(VENV)/.test-installed chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m tests.setup
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench.client_overhead $(ARGS)

clean-venv:
	rm -rf $(VENV)
