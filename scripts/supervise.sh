#!/usr/bin/env bash
# supervise.sh NAME COMMAND...: runs COMMAND, and runs it again within 2 s whenever it exits, saying
# so in the log, until this script is told to stop (SIGTERM or SIGINT, which it passes on). The
# command's pid is kept in $PLAT_HOME/run/NAME.child.pid.
set -uo pipefail
name="$1"
shift
pidfile="${PLAT_HOME:-$HOME/.plat}/run/$name.child.pid"
mkdir -p "$(dirname "$pidfile")"
child=""
stopping=""
stop() {
  stopping=1
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap stop TERM INT

say() { printf '[supervise] %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$*" >&2; }

while :; do
  started=$SECONDS
  "$@" &
  child=$!
  echo "$child" >"$pidfile"
  wait "$child"
  code=$?
  # A signal for this script ends `wait` early: let the command finish its own shutdown.
  while [ -n "$stopping" ] && kill -0 "$child" 2>/dev/null; do
    wait "$child"
    code=$?
  done
  if [ -n "$stopping" ]; then
    rm -f "$pidfile"
    exit 0
  fi
  ran=$((SECONDS - started))
  # A command that dies right after it starts (a port taken, a dependency down) is not restarted in a tight loop.
  if [ "$ran" -lt 5 ]; then delay=2; else delay=0.5; fi
  reason="with code $code"
  if [ "$code" -gt 128 ]; then reason="by signal $(kill -l "$((code - 128))" 2>/dev/null || echo "$((code - 128))")"; fi
  say "exited $reason after ${ran} s; restarting it in ${delay} s"
  sleep "$delay"
  [ -n "$stopping" ] && exit 0
  say "restarted"
done
