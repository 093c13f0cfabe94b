# Two-command set-up: `make demo` and `make test` create .venv on a machine with only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

.PHONY: demo test test-fast test-ground lint bench scorecard clean mosquitto java

# Exact versions from constraints.txt (pyproject.toml gives compatible ranges).
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,plot]'
	touch $(STAMP)

# --overwrite: each run replaces the last one's archive in out/demo.
demo: $(STAMP)
	$(BIN)/cabinwatch demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check common drivers firmware_host harness hil station tests bench
	$(BIN)/ruff format --check common drivers firmware_host harness hil station tests bench

# Everything but the `long` tests (pyproject's addopts: -m 'not long'), on one
# worker per core plus one (pytest-xdist; a module's tests stay on one worker so
# its module-scoped fixtures are computed once): the real-time tests wait more
# than they compute, and the extra worker keeps the cores busy meanwhile (2
# cores: 5.7 min against 7.4 min on two workers).  Plain `pytest` runs serially.
# The station tests start their own Mosquitto (harness/broker.py); `mosquitto`
# installs the Debian package where it is missing and we are root.
test: $(STAMP) lint mosquitto
	CABINWATCH_REQUIRE_MOSQUITTO=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

# The ground tests (tests/ground) including those against a real Yamcs server
# (marker `yamcs`, left out of `make test`; Java 17, which `java` installs where
# it is missing and we are root); about a minute.
test-ground: $(STAMP) java
	CABINWATCH_REQUIRE_YAMCS=1 $(BIN)/python -m pytest tests/ground -m "not long"

# Without the real-time and long system tests (marker `slow`), one worker per
# core.  A -m given here replaces addopts' -m, so it names `long` and `yamcs` again.
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -n auto -m "not slow and not long and not yamcs"

# The micro-benchmarks (minutes), then the full detection scorecard: the leak
# sweep, sensor-faults and link-faults for a day each and nominal for 30 days
# (the scorecard about 15 min on this 2-core machine; docs/DETECTION.md).
bench: $(STAMP)
	$(BIN)/python -m bench
	mkdir -p build
	$(BIN)/python -m bench.detection --json build/detection.json --plots build/detection

# The quick sweep (a few minutes), then the scenario goals that need hours of
# simulated time (tests marked long: zvezda-prk over 15 h, about 1 min).
scorecard: $(STAMP)
	$(BIN)/python -m bench.detection --quick
	$(BIN)/python -m pytest -m long

# Eclipse Mosquitto (Debian package mosquitto): installed if missing and root,
# otherwise one line naming the package and exit 2.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make: mosquitto is not installed: install the Debian package mosquitto (apt-get install mosquitto, as root)" >&2; exit 2; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q mosquitto >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q mosquitto >/dev/null; } || \
	  { echo "make: could not install the Debian package mosquitto" >&2; exit 2; }; }

# Java 17 for Yamcs (Debian package openjdk-17-jre-headless): installed if
# missing and root, otherwise one line naming the package and exit 2.
java:
	@command -v java >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make: java is not installed: install the Debian package openjdk-17-jre-headless (apt-get install openjdk-17-jre-headless, as root)" >&2; exit 2; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q openjdk-17-jre-headless >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q openjdk-17-jre-headless >/dev/null; } || \
	  { echo "make: could not install the Debian package openjdk-17-jre-headless" >&2; exit 2; }; }

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
