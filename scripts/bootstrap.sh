#!/usr/bin/env bash
# Installs what building and testing Jarvis needs, on a fresh Debian/Ubuntu machine or an old one.
# Idempotent and quick when everything is there. Called by scripts/run.sh and scripts/test.sh.
#
#   scripts/bootstrap.sh            system packages only (what `jarvis serve` needs to build)
#   scripts/bootstrap.sh --test     also the Python venv with the reference Wyoming client
set -euo pipefail
cd "$(dirname "$0")/.."

# clang/libclang: bindgen (avahi bindings; whisper.cpp later); cmake: whisper.cpp;
# libavahi-client-dev: zeroconf advertisement; pkg-config: finding system libraries.
APT_PACKAGES=(build-essential pkg-config cmake clang libclang-dev libavahi-client-dev)
PYTHON_PACKAGES=("wyoming==1.10.2")

log() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    log "missing packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  log "cargo not found: install Rust (https://rustup.rs) and run this again"
  exit 1
fi

if [[ ${1:-} == --test ]]; then
  venv=.venv
  want="${PYTHON_PACKAGES[*]}"
  if [[ ! -x $venv/bin/python ]] || [[ $(cat "$venv/.jarvis-packages" 2>/dev/null) != "$want" ]]; then
    log "creating $venv with ${PYTHON_PACKAGES[*]}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
    echo "$want" >"$venv/.jarvis-packages"
  fi
fi
