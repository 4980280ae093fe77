# catalog-sync: the commands the README names. `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: test lint fmt-check clippy unit tools template-check bench memory-check sam-local fresh-clone

## Every check CI runs: formatting, lints, all tests (tools are installed on first use), and
## last the README's two commands in a fresh clone.
test: fmt-check clippy tools deny unit template-check memory-check sam-local fresh-clone
	@echo "make test: all checks passed"

# The commit `make test` (the default goal) tests when it starts from a clean checkout (nothing
# modified, nothing untracked), else empty. Read once, as make starts, and kept in memory: a
# file under target/ would be written before cargo creates that folder (and its CACHEDIR.TAG).
# Such a run tests exactly what a fresh clone holds, so the fresh-clone step need not run
# `make test` a second time (infra/fresh-clone-check.sh); `make fresh-clone` alone proves
# nothing and always runs it.
CLEAN_START_HEAD := $(if $(filter test,$(or $(MAKECMDGOALS),test)),$(shell \
  [ -z "$$(git status --porcelain --untracked-files=all 2>/dev/null)" ] && git rev-parse HEAD 2>/dev/null))

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

## Two builds: everything with every feature (AWS included), and the local-only build of the
## CLI and sync (no `aws` feature, what `cargo run -p catalog-sync -- demo` compiles), so code
## behind or outside `#[cfg(feature = "aws")]` is linted both ways.
clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy -p sync -p catalog-sync --all-targets -- -D warnings

## Pinned Python tools (moto server, cfn-lint, SAM CLI, check-jsonschema) in .tools/.
tools:
	bash infra/install-tools.sh

## --all-features: the AWS commands of the CLI and the moto tests of sync need the `aws` feature.
unit:
	$(CARGO) test --workspace --all-features

template-check: tools
	bash infra/check-template.sh

## Streams, not buffers: a 1,000,000-row transform must fit in a hard 256 MiB address-space
## limit (the Lambda's memory size). A regression that buffers the ~330 MB file fails here.
memory-check:
	bash infra/memory-check.sh

## `sam build` (x86_64) and `sam local invoke` of both functions in Docker, against moto and the
## Graph API emulator on an --internal Docker network, each outcome checked; the commands are
## README.md's "Run a function locally". Starts (and stops) its own Docker daemon: needs root or
## passwordless sudo. Inside the fresh clone, skipped when this commit already passed it here
## from a clean tree. See infra/sam-local-check.py.
sam-local: tools
	$(TOOLS_DIR)/sam/bin/python infra/sam-local-check.py

## The README's two commands, exactly as written, in a fresh clone of the committed HEAD
## (uncommitted changes are not in it). Skipped inside that clone (CATALOG_SYNC_NESTED=1). In
## a `make test` that started from a clean checkout (CLEAN_START_HEAD), only the first command runs
## there: the run itself has just been the second on the clone's files.
fresh-clone:
ifeq ($(CATALOG_SYNC_NESTED),1)
	@echo "fresh-clone: skipped inside the fresh clone itself"
else
	MAKE_TEST_CLEAN_HEAD=$(CLEAN_START_HEAD) bash infra/fresh-clone-check.sh
endif

## Figures, never pass/fail: criterion throughput of the catalog pipeline.
bench:
	$(CARGO) bench -p catalog --bench transform

# ---------------------------------------------------------------- dependency policy and fuzzing
# Pinned cargo subcommands, built on first use into $(TOOLS_DIR)/cargo/bin by
# infra/install-cargo-tool.sh (`cargo install --locked`).
TOOLS_DIR ?= $(CURDIR)/.tools
CARGO_DENY_VERSION := 0.20.2
CARGO_FUZZ_VERSION := 0.13.2

.PHONY: deny fuzz fuzz-replay

## The dependency policy of deny.toml: licenses, banned crates, sources (crates.io only); part of
## `make test`. Advisories are not checked: their database is fetched from GitHub (SECURITY.md).
## Prints errors and a count per check; `make deny DENY_LOG=warn` also lists the warnings
## (crates present in two versions).
DENY_LOG ?= error
deny:
	bash infra/install-cargo-tool.sh cargo-deny $(CARGO_DENY_VERSION)
	$(TOOLS_DIR)/cargo/bin/cargo-deny --log-level $(DENY_LOG) --locked \
	  check --show-stats --hide-inclusion-graph bans licenses sources

## Replays the saved fuzz corpus (fuzz/corpus/<target>/) without libFuzzer. Also part of
## `make unit`, as fuzz/ is a workspace member.
fuzz-replay:
	$(CARGO) test -p catalog-sync-fuzz

## Fuzzes each target of fuzz/fuzz_targets/ for FUZZ_SECONDS with cargo-fuzz on the stable
## toolchain (RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags), starting from fuzz/corpus/<target>/;
## a crash stops the run with its input in fuzz/artifacts/<target>/. What the run found is then
## merged into fuzz/corpus/<target>/: only inputs that reach code the corpus does not (libFuzzer's
## set-cover merge on edges), so the corpus stays small. The build and the run's own corpus live
## in fuzz/target/; the release profile's LTO and stripping are turned off for the build.
## Not part of `make test`. E.g. make fuzz FUZZ_TARGETS=csv_pipeline FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= csv_pipeline lambda_events graph_response
FUZZ_ARGS ?=
FUZZ_ENV := RUSTC_BOOTSTRAP=1 PATH="$(TOOLS_DIR)/cargo/bin:$$PATH" \
	CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_STRIP=false
fuzz:
	bash infra/install-cargo-tool.sh cargo-fuzz $(CARGO_FUZZ_VERSION)
	for t in $(FUZZ_TARGETS); do \
	  run="fuzz/target/corpus-run/$$t"; rm -rf "$$run"; mkdir -p "$$run" "fuzz/corpus/$$t"; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_ENV) $(CARGO) fuzz run --target-dir fuzz/target "$$t" "$$run" "fuzz/corpus/$$t" -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 $(FUZZ_ARGS) || exit 1; \
	  $(FUZZ_ENV) $(CARGO) fuzz run --target-dir fuzz/target "$$t" "fuzz/corpus/$$t" "$$run" -- \
	    -set_cover_merge=1 -use_counters=0 -use_cmp=0 >"$$run.merge.log" 2>&1 \
	    || { tail -n 20 "$$run.merge.log" >&2; echo "fuzz: merging into fuzz/corpus/$$t failed" >&2; exit 1; }; \
	  echo "fuzz: $$t: $$(grep -E '^MERGE-OUTER: [0-9]+ new files' "$$run.merge.log")"; \
	done
