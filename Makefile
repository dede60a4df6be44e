# isobench: `make bench` measures startup on this host; `make test` runs every test.
VENV  := .venv
BENCH := $(VENV)/bin/bench

.PHONY: setup bench test clean

setup:
	@bash scripts/setup.sh

bench: setup
	$(BENCH) run --suite startup

test: setup
	$(VENV)/bin/pytest

clean:
	$(BENCH) clean
