#!/usr/bin/env bash
# Makes sure every runtime has a base image: the official one when it is present or can be pulled,
# else a local equivalent built offline (Debian by debootstrap, plus the runtime's binary).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEBIAN_IMAGE="plat-base/debian:bookworm"
DEBIAN_PACKAGES="ca-certificates,python3"

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  local src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    awk '/^URIs:/ { print $2; exit }' "$src"
  else
    echo "http://deb.debian.org/debian"
  fi
}

ensure_debian_image() {
  has_image "$DEBIAN_IMAGE" && return 0
  local tarball="$PLAT_CACHE/debian-bookworm-$(echo "$DEBIAN_PACKAGES" | md5sum | cut -c1-8).tar"
  local log="$LOG_DIR/base-images.log"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { need_root_for debootstrap; apt_install debootstrap; }
    note "building a Debian bookworm root file system with debootstrap (about a minute, once)"
    local dir
    dir="$(mktemp -d "$PLAT_CACHE/rootfs.XXXXXX")"
    debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" bookworm "$dir" "$(debian_mirror)" >>"$log" 2>&1 ||
      { rm -rf "$dir"; die "debootstrap" "$log" "could not build the Debian root file system"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    rm -rf "$dir"
  fi
  docker import "$tarball" "$DEBIAN_IMAGE" >>"$log" 2>&1 || die "docker import" "$log" "could not import $tarball"
  ok "imported $DEBIAN_IMAGE"
}

runtime_field() { node -p "require('$ROOT/runtimes/$1/runtime.json').$2"; }

# The binary each runtime's offline base copies in: from node_modules, or the host's Node.js.
runtime_binary() {
  case "$1" in
    bun) echo "$ROOT/node_modules/bun/bin/bun.exe" ;;
    deno) echo "$ROOT/node_modules/@deno/linux-x64-glibc/deno" ;;
    node) readlink -f "$(command -v node)" ;;
    *) echo "" ;;
  esac
}

ensure_runtime_base() {
  local runtime="$1" official offline log="$LOG_DIR/base-images.log"
  official="$(runtime_field "$runtime" baseImage)"
  offline="$(runtime_field "$runtime" offlineBaseImage)"
  if has_image "$official"; then
    ok "$runtime base: $official"
    return 0
  fi
  # The offline image is rebuilt when its recipe or its binary changes (e.g. a newer bun from npm).
  local binary key
  binary="$(runtime_binary "$runtime")"
  key="$( (cat "$ROOT/runtimes/$runtime/base.Dockerfile"; if [ -n "$binary" ]; then stat -c '%s' "$binary"; fi) | md5sum | cut -c1-12)"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "dev.plat.base-key" }}' "$offline" 2>/dev/null)" = "$key" ]; then
    ok "$runtime base: $offline (offline build)"
    return 0
  fi
  if timeout 60 docker pull "$official" >>"$log" 2>&1; then
    ok "$runtime base: $official (pulled)"
    return 0
  fi
  note "$official cannot be pulled; building $offline offline"
  ensure_debian_image
  local ctx
  ctx="$(mktemp -d)"
  if [ -n "$binary" ]; then
    cp "$binary" "$ctx/$runtime"
    chmod 0755 "$ctx/$runtime"
  fi
  DOCKER_BUILDKIT=0 docker build -q -t "$offline" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --label "dev.plat.base-key=$key" \
    -f "$ROOT/runtimes/$runtime/base.Dockerfile" "$ctx" >>"$log" 2>&1 ||
    { rm -rf "$ctx"; die "base image $offline" "$log" "docker build failed"; }
  rm -rf "$ctx"
  ok "$runtime base: $offline (offline build)"
}

ensure_base_images() {
  step "base images"
  for dir in "$ROOT"/runtimes/*/; do
    [ -f "$dir/runtime.json" ] && ensure_runtime_base "$(basename "$dir")"
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_base_images; fi
