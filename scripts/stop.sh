#!/usr/bin/env bash
# npm stop: stops what npm start started, and only that; function containers stay as they are
# (the platform finds them again on the next start).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
step "stopping plat"
for part in gateway worker temporal registry dockerd; do
  stop_bg "$part"
done
ok "done"
