# danescan: two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the testbed and the tests need (the commands they provide are checked first),
# and dns-root-data: the root's trust anchor and hints a scan of the real internet starts from.
DEB_PACKAGES := unbound nsd ldnsutils bind9-dnsutils postfix nginx-light dnsperf valgrind openssl chromium dns-root-data
STAMP := $(VENV)/.installed
DEMO_DIR ?= .testbed/demo
DEMO_DOMAINS ?= 2000
# make demo PROFILE=internet: the same demo on a testbed that answers like the real internet.
PROFILE ?= loopback
LATENCY_SCALE ?= 1
BENCH_DOMAINS ?= 100000

.PHONY: setup deb venv native demo test lint unit integration fuzz bench notebooks clean

setup: deb venv native

# Idempotent: installs only what is missing, so a second run is a no-op.
deb:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[analysis,cluster,dev]'
	@touch $@

# The resolve stage's hot modules compiled by mypyc (scanner/native/ says
# which): the same sources, less CPU per query. The extensions shadow the
# sources on import, so they are rebuilt whenever scanner code changes (mypyc
# compiles against the types of what they import; a build whose sources
# changed is refused at import by their hashes, and runs from source).
NATIVE_STAMP := $(VENV)/.native
NATIVE_DEPS := $(shell find scanner -name '*.py')

native: $(NATIVE_STAMP)

$(NATIVE_STAMP): $(NATIVE_DEPS) $(STAMP)
	@mkdir -p .cache
	@echo "compiling the modules of scanner/native/ with mypyc (log: .cache/native-build.log)"
	@$(BIN)/python -m scanner.native >.cache/native-build.log 2>&1 || { tail -n 30 .cache/native-build.log; exit 1; }
	@touch $@

demo: setup
	$(BIN)/python -m testbed.demo --dir $(DEMO_DIR) --domains $(DEMO_DOMAINS) \
		--profile $(PROFILE) --latency-scale $(LATENCY_SCALE)

lint: setup
	$(BIN)/ruff check scanner analysis testbed tests benchmarks
	$(BIN)/ruff format --check scanner analysis testbed tests benchmarks
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

test: lint
	$(BIN)/pytest -q tests

# Coverage-guided fuzzing (atheris) of every parser of remote or user bytes,
# FUZZ_SECONDS per target (tests/fuzz/run.py; findings in .cache/fuzz/<target>/).
# `make test` runs the same harnesses briefly over their seed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= dns_message dns_name smtp der tlsa normalise reader exclude
fuzz: setup
	@for target in $(FUZZ_TARGETS); do \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  $(BIN)/python -m tests.fuzz.run $$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# sslyze (the handshake benchmark's peer) pins an older cryptography than the
# project's, so it lives in a virtualenv of its own.
SSLYZE_VENV := .cache/sslyze-venv

$(SSLYZE_VENV)/bin/sslyze:
	$(PYTHON) -m venv $(SSLYZE_VENV)
	$(SSLYZE_VENV)/bin/pip install -q sslyze==6.3.1

bench: setup $(SSLYZE_VENV)/bin/sslyze
	$(BIN)/python -m benchmarks.run

# Execute the adoption notebook against a dataset: make notebooks RESULTS=results/x [COMPARE=...]
RESULTS ?= results/latest
notebooks: setup
	$(BIN)/python -m analysis.notebook notebooks/adoption.ipynb $(RESULTS) \
		-o $(RESULTS)/adoption.ipynb $(if $(COMPARE),--compare $(COMPARE))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info build
	find scanner -name '*.so' -delete
	rm -f scanner/_native_build.json
