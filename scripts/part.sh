#!/usr/bin/env bash
# part.sh stop|start temporal|dockerd: stops one part of the local infrastructure, or starts it again
# the way `npm start` does. The fault tests use it to take Temporal or the Docker engine away and
# bring it back; it stops only a part that this project's scripts started.
source "$(dirname "${BASH_SOURCE[0]}")/infra.sh"

action="${1:-}" part="${2:-}"
case "$part" in temporal | dockerd) ;; *) die "part.sh" "" "usage: part.sh stop|start temporal|dockerd" ;; esac
case "$action" in
  stop)
    is_running "$part" || die "part.sh" "" "$part was not started by plat's scripts (no $RUN_DIR/$part.pid), so it is not stopped here"
    stop_bg "$part"
    ;;
  start)
    if [ "$part" = temporal ]; then ensure_temporal; else ensure_docker; fi
    ;;
  *) die "part.sh" "" "usage: part.sh stop|start temporal|dockerd" ;;
esac
