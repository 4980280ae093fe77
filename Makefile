# catalog-sync: the commands the README names. `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: test lint fmt-check clippy unit tools template-check bench memory-check fresh-clone

## Every check CI runs: formatting, lints, all tests (tools are installed on first use), and
## last the README's two commands in a fresh clone.
test: fmt-check clippy tools unit template-check memory-check fresh-clone
	@echo "make test: all checks passed"

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Pinned Python tools (moto server, cfn-lint, SAM CLI, check-jsonschema) in .tools/.
tools:
	bash infra/install-tools.sh

unit:
	$(CARGO) test --workspace

template-check: tools
	bash infra/check-template.sh

## Streams, not buffers: a 1,000,000-row transform must fit in a hard 256 MiB address-space
## limit (the Lambda's memory size). A regression that buffers the ~330 MB file fails here.
memory-check:
	bash infra/memory-check.sh

## The README's two commands, exactly as written, in a fresh clone of the committed HEAD
## (uncommitted changes are not in it). Skipped inside that clone (CATALOG_SYNC_NESTED=1).
fresh-clone:
ifeq ($(CATALOG_SYNC_NESTED),1)
	@echo "fresh-clone: skipped inside the fresh clone itself"
else
	bash infra/fresh-clone-check.sh
endif

## Figures, never pass/fail: criterion throughput of the catalog pipeline.
bench:
	$(CARGO) bench -p catalog --bench transform
