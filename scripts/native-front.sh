#!/usr/bin/env bash
# The native invoke front (gateway/native, the gateway's port by default): built with cargo (Debian's
# cargo-web installed when there is none) into $PLAT_CACHE/native-front, where the gateway loads it
# from (PLAT_NATIVE_FRONT_LIB overrides). Its crates are fetched from crates.io once; a build with
# nothing changed takes a moment.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATIVE_FRONT_DIR="$PLAT_CACHE/native-front"

ensure_native_front() {
  step "native invoke front (cargo build)"
  local cargo
  cargo="$(command -v cargo || true)"
  [ -n "$cargo" ] || [ ! -x "$HOME/.cargo/bin/cargo" ] || cargo="$HOME/.cargo/bin/cargo"
  if [ -z "$cargo" ]; then
    # Debian 12's cargo is too old for the crates; cargo-web is a current one (1.9x), from the same archive.
    need_root_for "cargo (Rust, for the native invoke front)"
    note "installing Debian's cargo-web (Rust) for the native invoke front"
    apt_install cargo-web
    cargo="$(command -v cargo || true)"
    [ -n "$cargo" ] || die "cargo" "$LOG_DIR/apt.log" "cargo-web did not install a cargo command"
  fi
  CARGO="$cargo"
  "$cargo" build --release --quiet --manifest-path "$ROOT/gateway/native/Cargo.toml" --target-dir "$NATIVE_FRONT_DIR" \
    >>"$LOG_DIR/native-front.log" 2>&1 || die "cargo build (gateway/native)" "$LOG_DIR/native-front.log" "the native invoke front did not build"
  export PLAT_NATIVE_FRONT_LIB="$NATIVE_FRONT_DIR/release/libplat_front.so"
  ok "$PLAT_NATIVE_FRONT_LIB"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_native_front; fi
