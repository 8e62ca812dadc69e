#!/usr/bin/env bash
# npm test: installs what is missing, makes sure the infrastructure runs (engine, registry, Temporal,
# base images, the workflow tests' time-skipping server) and runs the whole suite: lint and types,
# then unit, workflow and integration tests, then the fault tests, which stop and restart shared
# parts (Temporal, the engine) and so run last, alone. The suite starts its own worker and gateway.
# Whatever this script had to start, it stops again at the end; parts that were running stay running.
# With arguments, runs `bun test` with them instead of the whole suite.
source "$(dirname "${BASH_SOURCE[0]}")/infra.sh"
source "$(dirname "${BASH_SOURCE[0]}")/test-server.sh"
source "$(dirname "${BASH_SOURCE[0]}")/promtool.sh"
source "$(dirname "${BASH_SOURCE[0]}")/schemathesis.sh"
source "$(dirname "${BASH_SOURCE[0]}")/native-front.sh"

# (an if, not `is_running && …`: under set -e a false last test would end the script right here)
started_before=" "
for part in dockerd registry temporal; do
  if is_running "$part"; then started_before+="$part "; fi
done
cleanup() {
  local code=$?
  for part in temporal registry dockerd; do
    if [[ "$started_before" != *" $part "* ]] && is_running "$part"; then stop_bg "$part" >/dev/null; fi
  done
  exit "$code"
}
trap cleanup EXIT

ensure_infra
ensure_test_server
ensure_promtool
ensure_schemathesis
ensure_native_front
# The TLS tests make their own certificates.
if ! command -v openssl >/dev/null; then need_root_for openssl; apt_install openssl; fi
# A test reads the gateway's listen backlog with ss.
if ! command -v ss >/dev/null; then need_root_for iproute2; apt_install iproute2; fi

cd "$ROOT"
passed=0
failed=0
# run_bun LABEL ARGS...: one `bun test` run, its counts added to the totals.
run_bun() {
  local label="$1" log code
  shift
  step "bun test: $label"
  log="$(mktemp)"
  set +e
  "$BUN" test --timeout 300000 "$@" 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  set -e
  local pass fail
  pass="$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | tr -dc 0-9)"
  fail="$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | tr -dc 0-9)"
  passed=$((passed + ${pass:-0}))
  failed=$((failed + ${fail:-0}))
  rm -f "$log"
  return "$code"
}

code=0
if [ "$#" -gt 0 ]; then
  run_bun "$*" "$@" || code=$?
else
  step "lint and types"
  node_modules/.bin/biome check . || code=1
  node_modules/.bin/tsc --noEmit -p . || code=1
  if [ "$code" -eq 0 ]; then ok "biome and tsc are clean"; fi
  # The native front's own tests (its HTTP parsing), in Rust.
  step "cargo test: gateway/native"
  if "$CARGO" test --release --quiet --manifest-path gateway/native/Cargo.toml --target-dir "$NATIVE_FRONT_DIR" 2>&1 | tee "$LOG_DIR/native-front-test.log" | grep -E '^test result'; then
    rust="$(grep -Eo '[0-9]+ passed; [0-9]+ failed' "$LOG_DIR/native-front-test.log" | tail -1)"
    passed=$((passed + ${rust%% passed*}))
  else
    code=1
    failed=$((failed + 1))
  fi
  run_bun "unit, workflows, integration, security" tests/unit tests/workflows tests/integration tests/security || code=$?
  run_bun "faults (stop and restart shared parts)" tests/faults || code=$?
fi
# A closing line any CI can read, from bun's own counts.
echo "$passed passed, $failed failed"
exit "$code"
