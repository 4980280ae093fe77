#!/usr/bin/env bash
# Offline checks of template.yaml and the GitHub workflows, with the pinned tools in .tools/:
#
#   1. sam validate                      SAM's own translator accepts the template
#   2. sam validate --lint               SAM CLI's cfn-lint run
#   3. cfn-lint                          standalone, including informational checks
#   4. SAM translation                   infra/tests/sam_translate.py -> plain CloudFormation
#   5. cfn-lint on the translation       sees what SAM generates (S3 notification, permissions,
#                                        schedule rule); a circular dependency shows up only here
#   6. workflow schema                   check-jsonschema --builtin-schema vendor.github-workflows
#   7. metric names                      what the functions emit, printed by the Rust code
#                                        (the metric_names example of crates/sync)
#   8. template tests                    infra/tests/test_template.py (one count per test)
#
# Usage: infra/check-template.sh [-v]     (-v: list every test)
# Needs no network and no AWS credentials: the tools are installed beforehand by
# infra/install-tools.sh (called here; a no-op when they are up to date). The last line is
# "template: N passed, M failed"; the exit status is non-zero when anything failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools="${TOOLS_DIR:-$root/.tools}"
verbose=""
[ "${1:-}" = "-v" ] && verbose="-v"

cd "$root" || exit 1

"$here/install-tools.sh" sam cfn-lint check-jsonschema || {
  echo "check-template: the pinned tools are not installed; run infra/install-tools.sh once with access to the package index" >&2
  exit 1
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Hermetic AWS/SAM environment: a region for the translator, no telemetry, no profile or
# credentials lookups, SAM's settings file in the temporary directory instead of ~/.aws-sam.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export __SAM_CLI_APP_DIR="$tmp/sam-app-dir"
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0

# step NAME COMMAND...: run, count, show the output only on failure.
step() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    passed=$((passed + 1))
    echo "ok    $name"
  else
    failed=$((failed + 1))
    echo "FAIL  $name"
    printf '%s\n' "$out" | sed 's/^/      /'
  fi
}

# samconfig.toml turns --lint on for `sam validate`; an empty config file gives the translator-only run.
printf 'version = 0.1\n' >"$tmp/samconfig.toml"
step "sam validate" "$tools/sam/bin/sam" validate --config-file "$tmp/samconfig.toml" --template template.yaml
step "sam validate --lint" "$tools/sam/bin/sam" validate --lint --template template.yaml
step "cfn-lint template.yaml" "$tools/cfn-lint/bin/cfn-lint" --include-checks I -- template.yaml

translated="$tmp/translated.json"
step "SAM translation (infra/tests/sam_translate.py)" \
  "$tools/sam/bin/python" "$here/tests/sam_translate.py" template.yaml "$translated"
if [ -s "$translated" ]; then
  step "cfn-lint on the SAM-translated template" \
    "$tools/cfn-lint/bin/cfn-lint" --include-checks I -- "$translated"
else
  failed=$((failed + 1))
  echo "FAIL  cfn-lint on the SAM-translated template (no translation)"
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
if [ "${#workflows[@]}" -gt 0 ]; then
  step "workflow schema (${#workflows[@]} files)" \
    "$tools/check-jsonschema/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
else
  failed=$((failed + 1))
  echo "FAIL  workflow schema: no .github/workflows/*.yml"
fi

# The metric names the functions emit, from the Rust source (crates/sync/src/metrics.rs), for the
# tests of the dashboard and the alarms. Built with the workspace's features, as `make unit`
# builds it, so after the unit tests this only runs the example.
names="$tmp/metric-names.json"
step "metric names (crates/sync/examples/metric_names.rs)" bash -c '
  cargo build --quiet --locked --workspace --all-features --example metric_names &&
    "${CARGO_TARGET_DIR:-target}/debug/examples/metric_names" >"$1"' _ "$names"
if [ -s "$names" ]; then export CATALOG_SYNC_METRIC_NAMES="$names"; fi

# The template tests count one each.
if [ -s "$translated" ]; then export CATALOG_SYNC_TRANSLATED="$translated"; fi
out="$("$tools/cfn-lint/bin/python" "$here/tests/test_template.py" $verbose 2>&1)"
status=$?
summary="$(printf '%s\n' "$out" | tail -n 1)"
if [[ "$summary" =~ ^tests:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
  t_passed="${BASH_REMATCH[1]}"
  t_failed="${BASH_REMATCH[2]}"
  t_skipped="${BASH_REMATCH[3]}"
  passed=$((passed + t_passed))
  failed=$((failed + t_failed + t_skipped)) # here nothing may be skipped
  if [ "$status" -ne 0 ] || [ "$t_failed" -ne 0 ] || [ "$t_skipped" -ne 0 ] || [ -n "$verbose" ]; then
    printf '%s\n' "$out" | sed 's/^/      /'
  fi
  [ "$status" -ne 0 ] && [ "$t_failed" -eq 0 ] && failed=$((failed + 1))
  echo "$([ "$t_failed" -eq 0 ] && [ "$t_skipped" -eq 0 ] && [ "$status" -eq 0 ] && echo "ok  " || echo "FAIL")  template tests ($t_passed passed, $t_failed failed, $t_skipped skipped)"
else
  failed=$((failed + 1))
  echo "FAIL  template tests did not run"
  printf '%s\n' "$out" | sed 's/^/      /'
fi

echo "template: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
