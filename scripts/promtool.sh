#!/usr/bin/env bash
# promtool, which the metrics tests run to check the gateway's and the worker's exposition: taken
# out of Debian's prometheus package (apt-get download + dpkg-deb -x, so no Prometheus service is
# installed or started), once, into $PLAT_CACHE. The tests find it through PROMTOOL.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMTOOL_BIN="$PLAT_CACHE/promtool/usr/bin/promtool"

ensure_promtool() {
  step "promtool (metrics tests)"
  if [ ! -x "$PROMTOOL_BIN" ]; then
    command -v apt-get >/dev/null || die "promtool" "" "apt-get is needed to fetch Debian's prometheus package"
    local work
    work="$(mktemp -d)"
    if [ -z "${PLAT_APT_UPDATED:-}" ]; then
      apt-get update -qq >>"$LOG_DIR/apt.log" 2>&1 || die "apt-get update" "$LOG_DIR/apt.log" "cannot read the package lists"
      PLAT_APT_UPDATED=1
    fi
    (cd "$work" && apt-get download -qq prometheus) >>"$LOG_DIR/apt.log" 2>&1 ||
      die "apt-get download prometheus" "$LOG_DIR/apt.log" "cannot fetch Debian's prometheus package (for promtool)"
    rm -rf "$PLAT_CACHE/promtool"
    dpkg-deb -x "$work"/prometheus_*.deb "$PLAT_CACHE/promtool"
    rm -rf "$work"
  fi
  "$PROMTOOL_BIN" --version >/dev/null 2>&1 || die "promtool" "" "$PROMTOOL_BIN does not run"
  export PROMTOOL="$PROMTOOL_BIN"
  ok "promtool $("$PROMTOOL_BIN" --version 2>&1 | head -1 | awk '{print $3}')"
}
