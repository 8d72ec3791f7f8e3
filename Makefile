# jobfleet — two commands: `make run` (local fleet) and `make test` (everything, as CI runs it).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests drive for real: Prometheus (+promtool), shellcheck, Chromium.
SYSTEM_DEPS := prometheus:prometheus promtool:prometheus shellcheck:shellcheck chromium:chromium

.PHONY: setup system-deps run test lint unit bench bench-autoscale bench-worker bench-latency bench-submit chaos bench-workflows bench-fairness perf clean

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

setup: $(VENV)/.installed

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing$$missing (install them as root; tests that need them will fail)"; fi; \
	fi

run: setup
	$(PY) -m jobfleet run $(RUN_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q

test: setup system-deps lint
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup -m "not chaos"

# Long chaos run (lost, duplicated, kill->restart min/median/max, drain time -> bench/results/chaos.json),
# then the long reproductions marked `chaos` (plain RQ worker, Redis restart and stall).
chaos: setup
	$(PY) -m bench.chaos
	$(VENV)/bin/pytest -q -p no:randomly -m chaos tests/robust

bench: bench-submit bench-worker bench-latency bench-autoscale

bench-worker: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements-bench.txt
	@test -x .venv-arq/bin/python || $(PYTHON) -m venv .venv-arq
	.venv-arq/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-arq.txt
	$(PY) -m bench.worker_throughput $(BENCH_ARGS)

# Tagged, costed performance run: make perf MESSAGES=10000 RUN_ID=pool-10k [PERF_ARGS="--shape sleep:exp:0.05"]
MESSAGES ?= 1000
RUN_ID ?= local-$(shell date +%Y%m%d-%H%M%S)
perf: setup
	$(PY) -m bench.perf --messages $(MESSAGES) --run-id $(RUN_ID) $(PERF_ARGS)

bench-submit: setup
	$(PY) -m bench.submit

bench-latency: setup
	$(PY) -m bench.pickup_latency

bench-autoscale: setup
	$(PY) -m bench.autoscale

bench-workflows: setup
	$(PY) -m bench.workflows $(BENCH_ARGS)

bench-fairness: setup
	$(PY) -m bench.fairness
	$(PY) -m bench.fairness --cpu

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
