# foundry-lambda: build, test and run the Lambda locally against moto (tests/local-aws/README.md).
# GNU make + bash. Ports 5000 (moto) and 9000 (Invoke API) and the function name are fixed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
LOCALAWS    := tests/local-aws/localaws.py
ENV_FILE    := target/local-aws/env
MOTO_PORT   := 5000
# The tests run against their own moto, so that nothing they create shows in `make run`.
TEST_MOTO_PORT ?= 5055
TEST_ENV_FILE  := target/local-aws/test-env-$(TEST_MOTO_PORT)
INVOKE_PORT := 9000
# cargo lambda watch listens here; an Invoke API front on $(INVOKE_PORT) serves the function name
# (cargo lambda watch only knows the binary's name, `bootstrap`).
WATCH_PORT  ?= 9001
# How many invocations `make run` serves at once (cargo lambda watch instances).
RUN_CONCURRENCY ?= 8
# Settings of your own for `make run` (a file of KEY=VALUE lines, e.g. START_WAIT=events): they
# are added to the function's environment and win over the local AWS's.
RUN_ENV ?=
RUN_ENV_FILE := target/local-aws/run-env
# make run's stand-in for Discord's API (tests/local-aws/discord_sink.py): it prints each
# notification that arrives. Its settings (and the secrets it creates in moto) are in this file;
# NOTIFICATIONS=on in RUN_ENV turns notifications on.
DISCORD_PORT ?= 9010
DISCORD_SINK := tests/local-aws/discord_sink.py
DISCORD_ENV_FILE := target/local-aws/discord-env
RUN_BASE_FILE := target/local-aws/run-base-env
FUNCTION    := foundry-vtt-instance-management
EVENT       ?= events/status.json
PIP_FLAGS   := -q --disable-pip-version-check --no-input
CHECKOV_VENV := .venv-checkov
# The IAM coverage check: make test records every AWS request the function makes here.
IAM_REQUESTS := target/iam/requests.jsonl
# The deploy rehearsal deploys template.yaml into a moto of its own.
REHEARSAL_MOTO_PORT := 5066
REHEARSAL_ENV_FILE  := target/local-aws/rehearsal-env-$(REHEARSAL_MOTO_PORT)

.PHONY: help venv venv-run venv-lint venv-check venv-checkov iam-check deploy-rehearsal build test lint run invoke package bench bench-build bench-lambda-cpu layout fuzz mutants clean-aws

help:
	@echo "make venv       create .venv with moto (tests/local-aws/requirements.txt)"
	echo "make venv-run   also install cargo-lambda (tests/local-aws/requirements-run.txt)"
	echo "make venv-lint  also install cfn-lint (tests/local-aws/requirements-lint.txt)"
	echo "make build      cargo build --release --bin bootstrap"
	echo "make test       start/provision the tests' local AWS (moto on 127.0.0.1:$(TEST_MOTO_PORT)), cargo test --all-targets"
	echo "                recording every AWS request, then make iam-check and make deploy-rehearsal"
	echo "make iam-check  hold template.yaml's roles against the requests the last make test recorded"
	echo "make deploy-rehearsal  translate template.yaml (SAM) and CreateStack it into moto on 127.0.0.1:$(REHEARSAL_MOTO_PORT)"
	echo "make lint       cargo fmt --check, clippy -D warnings, cfn-lint and checkov on template.yaml"
	echo "make run        local AWS + cargo lambda watch; Invoke API on 127.0.0.1:$(INVOKE_PORT) for $(FUNCTION)"
	echo "make invoke EVENT=events/status.json   POST an event to the running function"
	echo "make package    cargo lambda build --release --arm64 --output-format zip"
	echo "make bench      the performance tables: cold start, memory, handler overhead, sweep scaling, AWS calls"
	echo "make layout     profile the code a typical run executes (valgrind) into the linker's symbol order"
	echo "make fuzz       $(FUZZ_INPUTS) mutated events through the parser and the checks before an action (FUZZ_INPUTS=…)"
	echo "make mutants    cargo-mutants over src/actions, src/store and src/domain against the tests on the fakes (slow)"
	echo "make clean-aws  stop the moto servers started by make test (5055) and make run (5000)"

# --- Python environment ------------------------------------------------------------------------

venv: $(VENV)/.stamp-test

$(VENV)/.stamp-test: tests/local-aws/requirements.txt
	@t0=$$SECONDS
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r $<
	touch $@
	echo "venv ready ($(VENV), $$((SECONDS - t0)) s)"

venv-run: $(VENV)/.stamp-run

$(VENV)/.stamp-run: tests/local-aws/requirements-run.txt $(VENV)/.stamp-test
	@$(PY) -m pip install $(PIP_FLAGS) -r $<
	touch $@

venv-check: $(VENV)/.stamp-check

$(VENV)/.stamp-check: tests/local-aws/requirements-check.txt $(VENV)/.stamp-test
	@$(PY) -m pip install $(PIP_FLAGS) -r $<
	touch $@

venv-checkov: $(CHECKOV_VENV)/.stamp

$(CHECKOV_VENV)/.stamp: tests/local-aws/requirements-checkov.txt
	@[ -x $(CHECKOV_VENV)/bin/python ] || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $<
	touch $@

venv-lint: $(VENV)/.stamp-lint

$(VENV)/.stamp-lint: tests/local-aws/requirements-lint.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r $<
	touch $@

# --- Rust ------------------------------------------------------------------------------------------

build:
	cargo build --release --bin bootstrap

# The tests record every AWS request the function makes (src/managers/instrument.rs) for
# make iam-check; TEST_MOTO_PORT=N runs them against a moto of their own on N.
test: venv venv-check
	$(PY) $(LOCALAWS) up --port $(TEST_MOTO_PORT) --env-out $(TEST_ENV_FILE) >/dev/null
	mkdir -p $(dir $(IAM_REQUESTS))
	rm -f $(IAM_REQUESTS)
	FOUNDRY_TEST_MOTO_PORT=$(TEST_MOTO_PORT) FOUNDRY_AWS_REQUEST_LOG=$(CURDIR)/$(IAM_REQUESTS) cargo test --all-targets
	$(MAKE) --no-print-directory iam-check deploy-rehearsal

# Every request the tests recorded against the roles of template.yaml (tools/iam_check.py).
iam-check: venv-check
	@[ -s $(IAM_REQUESTS) ] || { echo "make iam-check: no $(IAM_REQUESTS); run make test first" >&2; exit 1; }
	$(PY) -m unittest discover -s tools -p 'test_*.py'
	$(PY) tools/iam_check.py --requests $(IAM_REQUESTS) --env $(TEST_ENV_FILE)

# template.yaml through the SAM translator into a CloudFormation stack on a moto of its own,
# with the infrastructure of a deployment provisioned around it (tools/deploy_rehearsal.py).
deploy-rehearsal: venv venv-check
	@started=$$($(PY) $(LOCALAWS) up --port $(REHEARSAL_MOTO_PORT) --env-out $(REHEARSAL_ENV_FILE))
	stop_moto() { if [[ $$started == started* ]]; then $(PY) $(LOCALAWS) down --port $(REHEARSAL_MOTO_PORT); fi; }
	trap stop_moto EXIT
	$(PY) tools/deploy_rehearsal.py --env $(REHEARSAL_ENV_FILE)

lint: venv-lint venv-checkov
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	python3 tools/modgraph.py

# The performance tables (benches/tables): cold start and memory of the release binary next to
# a hello-world lambda_runtime binary (examples/floor.rs), handler overhead on the fakes, and AWS
# calls per action against a local AWS of its own (moto on $(BENCH_MOTO_PORT)).
BENCH_MOTO_PORT := 5077
BENCH_TLS_PORT  := 5078
BENCH_DIR       := target/bench
BENCH_ENV_FILE  := $(BENCH_DIR)/env-$(BENCH_MOTO_PORT)
BENCH_BINARIES  := floor=$(BENCH_DIR)/floor,bootstrap=$(BENCH_DIR)/bootstrap
# A 128 MB function gets 128/1769 of a vCPU once initialised (1,769 MB = one vCPU).
LAMBDA_CPU_QUOTA_US ?= 7236

bench-build:
	@t0=$$SECONDS
	mkdir -p $(BENCH_DIR)
	# The bench target first: `cargo bench` also builds bootstrap (with the test-only fakes
	# compiled in) into target/release/. Then the two measured binaries, copied aside: the
	# shipped one (--release) and the floor (the bench profile, which is the release profile).
	cargo bench --bench tables --bench availability --no-run
	cargo build --profile bench --example floor
	cargo build --release --bin bootstrap
	cp target/release/bootstrap $(BENCH_DIR)/bootstrap
	cp target/release/examples/floor $(BENCH_DIR)/floor
	echo "make bench: built in $$((SECONDS - t0)) s"

bench: venv bench-build
	@t0=$$SECONDS
	started=$$($(PY) $(LOCALAWS) up --port $(BENCH_MOTO_PORT) --env-out $(BENCH_ENV_FILE))
	stop_moto() { if [[ $$started == started* ]]; then $(PY) $(LOCALAWS) down --port $(BENCH_MOTO_PORT); fi; }
	trap stop_moto EXIT
	BENCH_ENV_FILE=$(BENCH_ENV_FILE) BENCH_BINARIES=$(BENCH_BINARIES) cargo bench --bench tables
	cargo bench --bench availability
	echo "make bench: ran in $$((SECONDS - t0)) s"

# Optional, needs root (a cgroup v1 `cpu` controller): table 1 with TLS in front of the local AWS
# (benches/tls_front.py; SSL_CERT_FILE = the system bundle + its CA, one file as on Amazon Linux
# 2023) and, from the first /next on, the CPU share of a 128 MB function. docs/performance.md.
bench-lambda-cpu: venv bench-build
	@cg=/sys/fs/cgroup/cpu/foundry-lambda-bench
	if ! mkdir -p $$cg 2>/dev/null || ! echo $(LAMBDA_CPU_QUOTA_US) > $$cg/cpu.cfs_quota_us 2>/dev/null; then
	  echo "make bench-lambda-cpu: needs a writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu (root)" >&2
	  exit 1
	fi
	echo 100000 > $$cg/cpu.cfs_period_us
	started=$$($(PY) $(LOCALAWS) up --port $(BENCH_MOTO_PORT) --env-out $(BENCH_ENV_FILE))
	$(PY) benches/tls_front.py --listen $(BENCH_TLS_PORT) --upstream $(BENCH_MOTO_PORT) --dir $(BENCH_DIR)/tls \
	  > $(BENCH_DIR)/tls-front.log 2>&1 &
	front=$$!
	cleanup() {
	  kill $$front 2>/dev/null || true
	  sleep 0.2; rmdir $$cg 2>/dev/null || true
	  if [[ $$started == started* ]]; then $(PY) $(LOCALAWS) down --port $(BENCH_MOTO_PORT); fi
	}
	trap cleanup EXIT
	for _ in $$(seq 100); do grep -q ready $(BENCH_DIR)/tls-front.log 2>/dev/null && break; sleep 0.1; done
	grep -q ready $(BENCH_DIR)/tls-front.log || { cat $(BENCH_DIR)/tls-front.log; exit 1; }
	sed -e 's#^AWS_ENDPOINT_URL=.*#AWS_ENDPOINT_URL=https://127.0.0.1:$(BENCH_TLS_PORT)#' $(BENCH_ENV_FILE) > $(BENCH_DIR)/env-tls
	echo "SSL_CERT_FILE=$(CURDIR)/$(BENCH_DIR)/tls/bundle.pem" >> $(BENCH_DIR)/env-tls
	echo "make bench-lambda-cpu: TLS on 127.0.0.1:$(BENCH_TLS_PORT), CPU quota $(LAMBDA_CPU_QUOTA_US) us per 100 ms after the first /next"
	BENCH_TABLES=1 BENCH_MEMORY_RUNS=1 BENCH_INVOCATIONS=100 BENCH_CGROUP=$$cg BENCH_ENV_FILE=$(BENCH_DIR)/env-tls \
	  BENCH_BINARIES=$${BENCH_LAMBDA_BINARIES:-$(BENCH_BINARIES)} cargo bench --bench tables

# The linker's symbol order (build.rs): the code that a cold start and typical invocations run,
# placed first and together, so that fewer 64 KiB blocks of the binary become resident
# (docs/performance.md, "Memory"). Rerun after a compiler or dependency update: a symbol that
# no longer exists is skipped, so a stale file costs memory, never correctness.
LAYOUT_ORDER := layout/x86_64-unknown-linux-gnu.order
LAYOUT_DIR   := target/layout

layout: venv
	@command -v valgrind >/dev/null || { echo "make layout: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
	mkdir -p $(LAYOUT_DIR)
	started=$$($(PY) $(LOCALAWS) up --port $(BENCH_MOTO_PORT) --env-out $(BENCH_ENV_FILE))
	stop_moto() { if [[ $$started == started* ]]; then $(PY) $(LOCALAWS) down --port $(BENCH_MOTO_PORT); fi; }
	trap stop_moto EXIT
	# The binary profiled is linked in its present order, with a map of where each function lies.
	FOUNDRY_LINK_MAP=$(CURDIR)/$(LAYOUT_DIR)/bootstrap.map cargo build --release --bin bootstrap
	cp target/release/bootstrap $(LAYOUT_DIR)/bootstrap
	$(PY) layout/profile.py --binary $(LAYOUT_DIR)/bootstrap --map $(LAYOUT_DIR)/bootstrap.map \
	  --env $(BENCH_ENV_FILE) --work $(LAYOUT_DIR) --out $(LAYOUT_ORDER)
	cargo build --release --bin bootstrap
	echo "make layout: $(LAYOUT_ORDER) written; target/release/bootstrap is linked in that order"

# --- Local run -------------------------------------------------------------------------------------

run: venv-run
	@if $(PY) $(LOCALAWS) invoke-api-up --port $(INVOKE_PORT) 2>/dev/null; then
	  echo "The stack is already up: the Invoke API answers on http://127.0.0.1:$(INVOKE_PORT) (function $(FUNCTION))."
	  echo "Try: make invoke EVENT=$(EVENT)"
	  exit 0
	fi
	if (exec 3<>/dev/tcp/127.0.0.1/$(WATCH_PORT)) 2>/dev/null; then
	  echo "make run: port $(WATCH_PORT) (cargo lambda watch) is taken by another process; stop it first" >&2
	  exit 1
	fi
	if (exec 3<>/dev/tcp/127.0.0.1/$(DISCORD_PORT)) 2>/dev/null; then
	  echo "make run: port $(DISCORD_PORT) (the stub Discord API) is taken; set DISCORD_PORT=…" >&2
	  exit 1
	fi
	started_moto=$$($(PY) $(LOCALAWS) up --port $(MOTO_PORT) --env-out $(ENV_FILE))
	watch_pid= proxy_pid= sink_pid=
	cleanup() {
	  trap - EXIT INT TERM
	  for pid in $$proxy_pid $$watch_pid $$sink_pid; do kill -TERM "$$pid" 2>/dev/null || true; done
	  for pid in $$proxy_pid $$watch_pid $$sink_pid; do wait "$$pid" 2>/dev/null || true; done
	  if [[ $$started_moto == started* ]]; then $(PY) $(LOCALAWS) down; fi
	  echo "make run: stopped"
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	$(PY) $(DISCORD_SINK) setup --port $(DISCORD_PORT) --moto http://127.0.0.1:$(MOTO_PORT) > $(DISCORD_ENV_FILE)
	cat $(ENV_FILE) $(DISCORD_ENV_FILE) > $(RUN_BASE_FILE)
	$(PY) $(DISCORD_SINK) serve --port $(DISCORD_PORT) &
	sink_pid=$$!
	if [ -n "$(RUN_ENV)" ]; then
	  [ -f "$(RUN_ENV)" ] || { echo "make run: no such file: RUN_ENV=$(RUN_ENV)" >&2; exit 2; }
	  # Yours win: the local AWS's lines for the same keys are left out.
	  awk -F= 'NR == FNR { if ($$0 ~ /^[A-Za-z_][A-Za-z0-9_]*=/) mine[$$1] = 1; next } !($$1 in mine)' \
	    "$(RUN_ENV)" $(RUN_BASE_FILE) > $(RUN_ENV_FILE)
	  grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$(RUN_ENV)" >> $(RUN_ENV_FILE) || true
	  echo "make run: settings from $(RUN_ENV): $$(grep -E -o '^[A-Za-z_][A-Za-z0-9_]*' "$(RUN_ENV)" | paste -sd' ')"
	else
	  cp $(RUN_BASE_FILE) $(RUN_ENV_FILE)
	fi
	set -a; source $(RUN_ENV_FILE); set +a
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
	cargo build --bin bootstrap  # build first: compile errors show now, and the first invoke is fast
	# Several instances of the function, as Lambda runs invocations in parallel.
	cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $(WATCH_PORT) --concurrency $(RUN_CONCURRENCY) \
	  --env-file $(RUN_ENV_FILE) &
	watch_pid=$$!
	$(PY) $(LOCALAWS) invoke-proxy --listen $(INVOKE_PORT) --upstream $(WATCH_PORT) \
	  --function $(FUNCTION) --binary bootstrap --quiet &
	proxy_pid=$$!
	echo "make run: moto on http://127.0.0.1:$(MOTO_PORT) ($${started_moto%% *}), env from $(RUN_ENV_FILE)"
	echo "make run: Invoke API on http://127.0.0.1:$(INVOKE_PORT) for $(FUNCTION); Ctrl-C stops everything"
	echo "make run: stub Discord API on http://127.0.0.1:$(DISCORD_PORT) (notifications: $${NOTIFICATIONS:-off})"
	echo "  make invoke EVENT=$(EVENT)"
	echo "  aws lambda invoke --endpoint-url http://127.0.0.1:$(INVOKE_PORT) --function-name $(FUNCTION) \\"
	echo "    --cli-binary-format raw-in-base64-out --payload file://$(EVENT) out.json"
	wait -n $$watch_pid $$proxy_pid || true

invoke:
	@[ -f "$(EVENT)" ] || { echo "make invoke: no such event file: $(EVENT)" >&2; exit 2; }
	url=http://127.0.0.1:$(INVOKE_PORT)/2015-03-31/functions/$(FUNCTION)/invocations
	if command -v curl >/dev/null 2>&1; then
	  out=$$(curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data-binary @"$(EVENT)" "$$url") \
	    || { rc=$$?; echo "$$out"; echo "make invoke: request failed (is \`make run\` up?)" >&2; exit $$rc; }
	  python3 -m json.tool <<<"$$out" 2>/dev/null || echo "$$out"
	else
	  python3 $(LOCALAWS) invoke --port $(INVOKE_PORT) --function $(FUNCTION) --event "$(EVENT)"
	fi

package: venv-run
	@if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
	  echo "make package: adding the rustup target aarch64-unknown-linux-gnu"
	  rustup target add aarch64-unknown-linux-gnu || {
	    echo "make package: cannot install the rustup target aarch64-unknown-linux-gnu, which" >&2
	    echo "  cargo lambda build --arm64 needs. Run \`rustup target add aarch64-unknown-linux-gnu\`" >&2
	    echo "  on a machine that can reach the Rust toolchain server, then retry." >&2
	    exit 1; }
	fi
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
	cargo lambda build --release --arm64 --output-format zip --bin bootstrap
	zip=target/lambda/bootstrap/bootstrap.zip
	[ -f "$$zip" ] || { echo "make package: $$zip was not produced" >&2; exit 1; }
	echo "make package: $$zip ($$(du -h "$$zip" | cut -f1))"

# --- Fuzzing and mutation testing ---------------------------------------------------------------

FUZZ_INPUTS ?= 10000000
FUZZ_SEED   ?= 1

fuzz:
	cargo run --profile fuzz --features test-util --example fuzz -- $(FUZZ_INPUTS) $(FUZZ_SEED)

# Every mutant is judged by the tests on the fakes (the moto tests add minutes per mutant and
# nothing the fakes miss for these files). cargo-mutants is installed on first use.
MUTANTS_FILES ?= src/actions/** src/store/** src/domain/**
MUTANTS_TESTS := --lib --test lifecycle --test races --test legacy_and_recovery --test scheduling \
  --test schedule_properties --test automation --test authorization --test kofi --test admin \
  --test handler --test metrics --test redaction
mutants:
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	cargo mutants --no-shuffle --timeout 120 $(foreach f,$(MUTANTS_FILES),--file '$(f)') \
	  --features test-util -- $(MUTANTS_TESTS)

clean-aws:
	@py=$(PY); [ -x $$py ] || py=$(PYTHON)
	$$py $(LOCALAWS) down --port $(MOTO_PORT)
	$$py $(LOCALAWS) down --port $(TEST_MOTO_PORT)
	$$py $(LOCALAWS) down --port $(REHEARSAL_MOTO_PORT)
