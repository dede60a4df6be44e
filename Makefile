# isobench: `make bench` measures startup on this host; `make test` runs every test.
VENV  := .venv
BENCH := $(VENV)/bin/bench

.PHONY: setup bench test lint soak clean

setup:
	@bash scripts/setup.sh

bench: setup
	$(BENCH) run --suite startup

test: setup lint
	$(VENV)/bin/pytest

# ruff (its default rules, bugbear, pyupgrade) and mypy on bench/ and runners/, as pyproject.toml sets them
lint: setup
	$(VENV)/bin/ruff check bench runners
	$(VENV)/bin/mypy

# 20 minutes of SIGKILLs at random moments, each followed by bench clean (scripts/soak.py); not in make test.
soak: setup
	$(VENV)/bin/python scripts/soak.py

clean:
	$(BENCH) clean
