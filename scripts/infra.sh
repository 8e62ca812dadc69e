#!/usr/bin/env bash
# The platform's infrastructure: node dependencies, Docker engine, registry, Temporal dev server.
# Each ensure_* starts its part only when nothing answers already, and records what it started
# in $PLAT_HOME/run so that stop.sh stops exactly that.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/base-images.sh"

ensure_node_deps() {
  step "node dependencies and host tools"
  local stamp="$ROOT/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/package-lock.json" -nt "$stamp" ]; then
    note "npm ci"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >>"$LOG_DIR/npm.log" 2>&1) ||
      die "npm ci" "$LOG_DIR/npm.log" "could not install the node packages"
  fi
  # npm may skip bun's postinstall (which puts the real binary in place of its placeholder).
  if ! "$BUN" --version >/dev/null 2>&1; then
    (cd "$ROOT/node_modules/bun" && node install.js >>"$LOG_DIR/npm.log" 2>&1) ||
      die "bun" "$LOG_DIR/npm.log" "the bun binary from npm does not run"
  fi
  # Python runtimes' requirements are resolved on this host with pip.
  if ! python3 -m pip --version >/dev/null 2>&1; then
    need_root_for "python3-pip"
    apt_install python3-pip
  fi
  ok "node $(node --version), bun $("$BUN" --version), $(python3 -m pip --version | cut -d' ' -f1-2)"
}

ensure_docker() {
  step "docker engine"
  if docker info >/dev/null 2>&1; then
    ok "engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    need_root_for "docker.io"
    note "installing Debian's docker.io"
    apt_install docker.io
  fi
  command -v docker >/dev/null || apt_install docker.io
  clear_stale_pidfile /var/run/docker.pid
  start_bg dockerd dockerd --host unix:///var/run/docker.sock
  wait_started dockerd 60 docker info || die "docker engine" "$LOG_DIR/dockerd.log" "dockerd did not answer within 60 s"
  ok "engine started (log: $LOG_DIR/dockerd.log)"
}

ensure_registry() {
  step "registry"
  local url="http://127.0.0.1:${REGISTRY##*:}/v2/"
  if http_ok "$url"; then
    ok "registry answers on $REGISTRY"
    return 0
  fi
  if ! command -v docker-registry >/dev/null; then
    need_root_for "docker-registry"
    note "installing Debian's docker-registry"
    apt_install docker-registry
  fi
  mkdir -p "$PLAT_HOME/registry"
  cat >"$PLAT_HOME/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $PLAT_HOME/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${REGISTRY##*:}
YAML
  start_bg registry docker-registry serve "$PLAT_HOME/registry.yml"
  wait_started registry 30 http_ok "$url" || die "registry" "$LOG_DIR/registry.log" "did not answer on $url within 30 s"
  ok "registry started on $REGISTRY (log: $LOG_DIR/registry.log)"
}

ensure_temporal_binary() {
  [ -x "$TEMPORAL_BIN" ] && return 0
  command -v go >/dev/null || die "temporal" "" "Go is needed to build the Temporal CLI; install Go >= 1.25"
  note "building the Temporal CLI $TEMPORAL_VERSION with go install (a few minutes, once; cached in $PLAT_CACHE)"
  local gobin
  gobin="$(dirname "$TEMPORAL_BIN")"
  mkdir -p "$gobin"
  GOBIN="$gobin" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION" \
    >>"$LOG_DIR/temporal-build.log" 2>&1 || die "go install temporal" "$LOG_DIR/temporal-build.log" "could not build the Temporal CLI"
}

temporal_healthy() { "$TEMPORAL_BIN" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; }

ensure_temporal() {
  step "temporal"
  ensure_temporal_binary
  if ! temporal_healthy; then
    start_bg temporal "$TEMPORAL_BIN" server start-dev \
      --ip "${TEMPORAL_ADDRESS%:*}" --port "${TEMPORAL_ADDRESS##*:}" --ui-port "$TEMPORAL_UI_PORT" \
      --db-filename "$PLAT_HOME/temporal.db" --log-level warn \
      --search-attribute PlatFunction=Keyword --search-attribute PlatVersion=Keyword \
      --search-attribute PlatRuntime=Keyword
    wait_started temporal 60 temporal_healthy || die "temporal" "$LOG_DIR/temporal.log" "the dev server did not answer on $TEMPORAL_ADDRESS within 60 s"
    ok "dev server started on $TEMPORAL_ADDRESS (log: $LOG_DIR/temporal.log)"
  else
    ok "dev server answers on $TEMPORAL_ADDRESS"
  fi
  # A server started by someone else may lack the platform's search attributes.
  local existing
  existing="$("$TEMPORAL_BIN" operator search-attribute list --address "$TEMPORAL_ADDRESS" 2>/dev/null || true)"
  for attr in PlatFunction PlatVersion PlatRuntime; do
    grep -q "$attr" <<<"$existing" ||
      "$TEMPORAL_BIN" operator search-attribute create --address "$TEMPORAL_ADDRESS" --name "$attr" --type Keyword >/dev/null
  done
}

ensure_infra() {
  ensure_node_deps
  ensure_docker
  ensure_registry
  ensure_temporal
  ensure_base_images
}
