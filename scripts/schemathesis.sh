#!/usr/bin/env bash
# Schemathesis, the outside fuzzer the API tests run against a live gateway's /openapi.json: a pinned
# version from PyPI, installed once with pip into $PLAT_CACHE (--target, so neither the system's
# Python nor a virtualenv package is touched), run through a small launcher the tests find through
# SCHEMATHESIS.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_DIR="$PLAT_CACHE/schemathesis-$SCHEMATHESIS_VERSION"

ensure_schemathesis() {
  step "schemathesis (API fuzzing)"
  local launcher="$SCHEMATHESIS_DIR/schemathesis"
  if [ ! -x "$launcher" ]; then
    local work="$SCHEMATHESIS_DIR.partial"
    rm -rf "$work"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$work/lib" \
      "schemathesis==$SCHEMATHESIS_VERSION" >>"$LOG_DIR/pip.log" 2>&1 ||
      die "pip install schemathesis" "$LOG_DIR/pip.log" "cannot install schemathesis $SCHEMATHESIS_VERSION from PyPI"
    printf '#!/bin/sh\nPYTHONPATH="%s/lib" exec python3 -m schemathesis.cli "$@"\n' "$SCHEMATHESIS_DIR" >"$work/schemathesis"
    chmod +x "$work/schemathesis"
    rm -rf "$SCHEMATHESIS_DIR"
    mv "$work" "$SCHEMATHESIS_DIR"
  fi
  "$launcher" --version >/dev/null 2>&1 || die "schemathesis" "" "$launcher does not run"
  export SCHEMATHESIS="$launcher"
  ok "schemathesis $SCHEMATHESIS_VERSION"
}
