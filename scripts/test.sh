#!/usr/bin/env bash
# npm test: installs what is missing, makes sure the infrastructure runs (engine, registry, Temporal,
# base images) and runs the whole suite. The suite starts its own worker and gateway. Whatever this
# script had to start, it stops again at the end; parts that were running already stay running.
source "$(dirname "${BASH_SOURCE[0]}")/infra.sh"

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

step "bun test"
cd "$ROOT"
log="$(mktemp)"
set +e
"$BUN" test --timeout 300000 "$@" 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
set -e
# A closing line any CI can read, from bun's own counts.
passed="$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | tr -dc 0-9)"
failed="$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | tr -dc 0-9)"
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$code"
