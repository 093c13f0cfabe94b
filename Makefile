# Two-command set-up: `make demo` and `make test` create .venv on a machine with only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench scorecard clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cabinwatch demo

lint: $(STAMP)
	$(BIN)/ruff check drivers firmware_host hil tests bench

test: $(STAMP) lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

scorecard: $(STAMP)
	$(BIN)/python -m bench.detection --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
