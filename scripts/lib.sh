# Shared helpers for the local stack scripts. Sourced, never run.
# Everything here is idempotent: a part that already answers is left alone.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAT_HOME="${PLAT_HOME:-$HOME/.plat}"
PLAT_CACHE="${PLAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plat}"
RUN_DIR="$PLAT_HOME/run"
LOG_DIR="$PLAT_HOME/logs"
TEMPORAL_VERSION="v1.5.1"
TEMPORAL_BIN="$PLAT_CACHE/temporal-$TEMPORAL_VERSION/temporal"
TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
REGISTRY="${REGISTRY:-localhost:5001}"
GATEWAY_PORT="${PORT:-8080}"
BUN="$ROOT/node_modules/.bin/bun"
export PLAT_HOME PLAT_CACHE TEMPORAL_ADDRESS REGISTRY

mkdir -p "$RUN_DIR" "$LOG_DIR" "$PLAT_CACHE"

if [ -t 1 ]; then
  C_BOLD=$'\e[1m' C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_DIM=$'\e[2m' C_OFF=$'\e[0m'
else
  C_BOLD="" C_RED="" C_GREEN="" C_DIM="" C_OFF=""
fi

step() { printf '%s==>%s %s\n' "$C_BOLD" "$C_OFF" "$*"; }
ok() { printf '  %s✓%s %s\n' "$C_GREEN" "$C_OFF" "$*"; }
note() { printf '  %s%s%s\n' "$C_DIM" "$*" "$C_OFF"; }

# die PART LOGFILE MESSAGE: names the part that failed and shows the end of its log.
die() {
  local part="$1" log="$2"
  shift 2
  printf '%serror:%s %s failed: %s\n' "$C_RED" "$C_OFF" "$part" "$*" >&2
  if [ -n "$log" ] && [ -f "$log" ]; then
    printf '%s--- last lines of %s ---%s\n' "$C_DIM" "$log" "$C_OFF" >&2
    tail -n 20 "$log" >&2
  fi
  exit 1
}

# wait_started NAME SECONDS COMMAND...: polls COMMAND until the daemon NAME (started by start_bg)
# answers; gives up when the deadline passes or at once when the daemon has exited.
wait_started() {
  local name="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || ! is_running "$name"; then
      return 1
    fi
    sleep 0.2
  done
}

# clear_stale_pidfile FILE: removes a pid file whose process is gone (or a zombie), as one left by a
# daemon that was killed; daemons such as dockerd refuse to start while it is there.
clear_stale_pidfile() {
  local file="$1" pid state
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null)"
  state="$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
  if [ -z "$pid" ] || [ -z "$state" ] || [ "$state" = "Z" ]; then
    rm -f "$file"
  fi
}

# start_bg NAME COMMAND...: starts a daemon detached from this shell, recording its pid and log.
# The log starts empty (start.sh waits for a line in it); the previous one is kept, with the four
# before it, as NAME.log.<when it was set aside>: a daemon restarted after a fault keeps its history.
start_bg() {
  local name="$1"
  shift
  local log="$LOG_DIR/$name.log"
  if [ -s "$log" ]; then
    mv "$log" "$log.$(date -u +%Y%m%dT%H%M%SZ)"
    # shellcheck disable=SC2012 # (names are ours: no spaces)
    ls -t "$log".* 2>/dev/null | tail -n +6 | xargs -r rm -f
  fi
  : >"$log"
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

is_running() {
  local pidfile="$RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && [ "$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" != "Z" ]
}

# stop_bg NAME: stops a daemon this stack started (and only such a daemon), politely first.
stop_bg() {
  local name="$1" pidfile="$RUN_DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    ok "stopped $name"
  fi
  rm -f "$pidfile"
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

apt_install() {
  if [ -z "${PLAT_APT_UPDATED:-}" ]; then
    apt-get update -qq >>"$LOG_DIR/apt.log" 2>&1 || die "apt-get update" "$LOG_DIR/apt.log" "cannot read the package lists"
    PLAT_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOG_DIR/apt.log" 2>&1 ||
    die "apt-get install $*" "$LOG_DIR/apt.log" "cannot install packages"
}

need_root_for() {
  [ "$(id -u)" -eq 0 ] || die "$1" "" "installing it needs root; run as root or install it yourself"
}
