# isobench: `make bench` measures startup on this host; `make test` runs every test.
VENV  := .venv
BENCH := $(VENV)/bin/bench

.PHONY: setup bench test soak clean

setup:
	@bash scripts/setup.sh

bench: setup
	$(BENCH) run --suite startup

test: setup
	$(VENV)/bin/pytest

# 20 minutes of SIGKILLs at random moments, each followed by bench clean (scripts/soak.py); not in make test.
soak: setup
	$(VENV)/bin/python scripts/soak.py

clean:
	$(BENCH) clean
