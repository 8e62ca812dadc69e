#!/usr/bin/env bash
# The native invoke front (gateway/native, PLAT_INVOKE_FRONT=native): built with cargo into
# $PLAT_CACHE/native-front, where the gateway loads it from (PLAT_NATIVE_FRONT_LIB overrides). Its
# crates are fetched from crates.io once; a build with nothing changed takes a moment.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATIVE_FRONT_DIR="$PLAT_CACHE/native-front"

ensure_native_front() {
  step "native invoke front (cargo build)"
  local cargo
  cargo="$(command -v cargo || true)"
  [ -n "$cargo" ] || [ ! -x "$HOME/.cargo/bin/cargo" ] || cargo="$HOME/.cargo/bin/cargo"
  [ -n "$cargo" ] || die "cargo" "" "Rust's cargo is needed to build the native invoke front: install Rust (https://rustup.rs), then run this again"
  CARGO="$cargo"
  "$cargo" build --release --quiet --manifest-path "$ROOT/gateway/native/Cargo.toml" --target-dir "$NATIVE_FRONT_DIR" \
    >>"$LOG_DIR/native-front.log" 2>&1 || die "cargo build (gateway/native)" "$LOG_DIR/native-front.log" "the native invoke front did not build"
  export PLAT_NATIVE_FRONT_LIB="$NATIVE_FRONT_DIR/release/libplat_front.so"
  ok "$PLAT_NATIVE_FRONT_LIB"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_native_front; fi
