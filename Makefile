# cutover — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is what they are made of.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT      := $(CURDIR)
VENV      := $(ROOT)/.venv
WORLD     := bash $(ROOT)/tests/env/world.sh
FUNCTIONS := $(notdir $(patsubst %/Cargo.toml,%,$(wildcard functions/*/Cargo.toml)))
export CARGO_TERM_COLOR ?= never
# A Node the infra accepts when the machine's is missing or too old (tests/env/node.sh installs it there).
export PATH := $(ROOT)/.tools/node/bin:$(PATH)

.PHONY: help demo test build bench lint env-up env-down env-status clean deps-lambda infra-test infra-deps

help:
	@echo "make demo      the local cutover rehearsal (brings the three-region world up and down)"
	@echo "make test      every test: Rust (unit + against moto and real PostgreSQL) and infra"
	@echo "make build     the Lambda zips: target/lambda/<function>/bootstrap.zip (arm64)"
	@echo "make bench     the benchmarks"
	@echo "make lint      rustfmt, clippy -D warnings, tsc"
	@echo "make env-up | env-down | env-status   the local world by itself"
	@echo "make clean     build output and the local world's data"

## The local world ---------------------------------------------------------------

env-up:
	@$(WORLD) up

env-down:
	@$(WORLD) down

env-status:
	@$(WORLD) status

## Tests -------------------------------------------------------------------------

# Build everything first (while no server idles), then bring the world up,
# run every test, and take the world down again whatever happened.
test:
	@bash tests/run-tests.sh

infra-deps:
	@if [ -f infra/package.json ]; then \
	  bash tests/env/node.sh; \
	  cd infra && if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	    echo "[infra] npm ci"; npm ci --no-audit --no-fund --loglevel=error; fi; fi

infra-test: infra-deps
	@if [ -f infra/package.json ]; then cd infra && npm run typecheck && npm test; \
	 else echo "[infra] no infra project yet"; fi

## The rehearsal -----------------------------------------------------------------

demo:
	@bash tests/run-demo.sh

## Lambda builds -----------------------------------------------------------------

# cargo-lambda and zig (its cross-linker) come from PyPI into the project venv.
deps-lambda:
	@if [ ! -x "$(VENV)/bin/cargo-lambda" ]; then \
	  echo "[build] installing cargo-lambda and ziglang into .venv"; \
	  [ -x "$(VENV)/bin/python" ] || python3 -m venv "$(VENV)"; \
	  "$(VENV)/bin/pip" install --quiet --disable-pip-version-check cargo-lambda ziglang; fi

build: deps-lambda
	@if [ -z "$(FUNCTIONS)" ]; then echo "[build] no functions under functions/ yet"; exit 0; fi; \
	export PATH="$(VENV)/bin:$$PATH"; \
	for f in $(FUNCTIONS); do \
	  echo "[build] $$f (release, arm64)"; \
	  cargo lambda build --release --arm64 --output-format zip -p $$f; \
	done; \
	ls -l target/lambda/*/bootstrap.zip

## Benchmarks --------------------------------------------------------------------

bench:
	@bash tests/run-bench.sh

## Lint --------------------------------------------------------------------------

lint: infra-deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@if [ -f infra/package.json ]; then cd infra && npm run lint; fi

clean:
	cargo clean
	-$(WORLD) down --purge
	rm -rf rehearsal-report
