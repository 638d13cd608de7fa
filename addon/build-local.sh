#!/usr/bin/env bash
# Builds the add-on image on this machine, without Docker Hub or ghcr.io, and starts it against
# the fake Supervisor of tests/addon.rs. Slow (the Rust build inside the image takes a long
# time on two cores) and needs root, so it is not part of CI.
#
#   addon/build-local.sh            base image (once), image, then the container check
#   addon/build-local.sh --build    base image and image only
#   addon/build-local.sh --run      the container check only (image built before)
#
# Steps:
#  1. A Debian bookworm root file system made with debootstrap from the configured Debian
#     mirror, with Debian's own apt sources (main, updates, security: Rust comes from
#     bookworm-security's rustc-web) and any CA certificates this machine trusts locally
#     (a TLS-intercepting proxy's, so that cargo and pip can reach their registries), imported
#     with `podman import` as localhost/debian:bookworm-debootstrap.
#  2. `podman build` of addon/jarvis/Dockerfile with that image as both BUILDER_FROM and
#     BUILD_FROM (the published image uses Home Assistant's base-debian instead).
#  3. `cargo test --test addon -- --ignored`: the image started with podman against an
#     in-process fake Supervisor, its first start downloading the models from a local server.
#
# Environment: JARVIS_ADDON_WORK (default .cache/addon) holds the root file system and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${JARVIS_ADDON_WORK:-$PWD/.cache/addon}
base_image=localhost/debian:bookworm-debootstrap
image=localhost/jarvis-addon:dev
# This machine runs containers with runc (crun refuses its hybrid cgroup set-up) and without
# raising resource limits above its own (no CAP_SYS_RESOURCE).
podman_run_opts=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

log() { printf '\033[1mbuild-local:\033[0m %s\n' "$*" >&2; }

need() {
  local missing=()
  for tool in debootstrap podman runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap podman runc uidmap >/dev/null
  fi
}

mirror() {
  # The first deb URI of the configured sources (deb822 or one-line format).
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | head -n 1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

base() {
  if podman image exists "$base_image"; then
    log "$base_image exists"
    return
  fi
  local rootfs=$work/rootfs debian
  debian=$(mirror)
  mkdir -p "$work"
  if [[ ! -x $rootfs/bin/bash ]]; then
    log "debootstrap bookworm from $debian"
    rm -rf "$rootfs"
    SECONDS=0
    nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" "$debian" >"$work/debootstrap.log"
    log "debootstrap took ${SECONDS}s"
  fi
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${debian%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  log "importing $base_image"
  tar -C "$rootfs" -c . | podman import - "$base_image" >/dev/null
}

build() {
  log "building $image (log: $work/build.log)"
  SECONDS=0
  # --format docker: HEALTHCHECK and SHELL are Docker-format features.
  # --layers keeps the dependency layer (several GB with its target/) so that a change to
  # Jarvis rebuilds in minutes; `podman image prune -f` frees it. --force-rm: no working
  # containers left behind by a failed step.
  if ! nice -n 10 podman build "${podman_run_opts[@]}" --network host --format docker --layers \
    --force-rm \
    --build-arg "BUILD_FROM=$base_image" --build-arg "BUILDER_FROM=$base_image" \
    -f addon/jarvis/Dockerfile -t "$image" . >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    log "podman build failed after ${SECONDS}s"
    exit 1
  fi
  log "built $image in ${SECONDS}s"
}

run() {
  log "starting $image against the fake Supervisor (tests/addon.rs, ignored tests)"
  SECONDS=0
  JARVIS_ADDON_IMAGE=$image JARVIS_ADDON_PODMAN_OPTS="${podman_run_opts[*]}" \
    cargo test --locked --test addon -- --ignored --nocapture
  log "container check passed in ${SECONDS}s"
}

need
case ${1:-} in
  --build) base && build ;;
  --run) run ;;
  "") base && build && run ;;
  *) log "unknown argument $1 (use --build or --run)"; exit 2 ;;
esac
