#!/usr/bin/env bash
# Installs what building and testing Jarvis needs, on a fresh Debian/Ubuntu machine or an old one.
# Idempotent and quick when everything is there. Called by scripts/run.sh and scripts/test.sh.
#
#   scripts/bootstrap.sh            system packages only (what `jarvis serve` needs to build)
#   scripts/bootstrap.sh --test     also the Python venvs: .venv (the reference Wyoming client)
#                                   and .venv-hacs (Home Assistant, for the HACS integration)
#   scripts/bootstrap.sh --fuzz     also cargo-fuzz, for scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# clang/libclang: bindgen (avahi bindings; whisper.cpp later); cmake: whisper.cpp;
# libavahi-client-dev: zeroconf advertisement; pkg-config: finding system libraries;
# libsonic-dev: espeak-ng (Piper phonemes) links libsonic.a.
APT_PACKAGES=(build-essential pkg-config cmake clang libclang-dev libavahi-client-dev libsonic-dev)
# Tests only: python3-venv for the reference Wyoming client; dbus + avahi-daemon so the zeroconf
# advertisement is browsed for real; mosquitto (with mosquitto_passwd) for the MQTT tests and
# benchmark, which start their own brokers on free loopback ports; espeak-ng speaks the
# wake-word test clips; shellcheck checks the shell scripts (the add-on's start script among
# them); chromium + chromium-driver: the panel's browser tests (tests/panel.rs) drive a real
# headless Chromium over WebDriver. redis-server: the clustered MQTT broker of the lease tests
# (Aedes nodes sharing state through Redis, tests/broker; its npm packages below).
TEST_APT_PACKAGES=(python3-venv dbus avahi-daemon mosquitto espeak-ng shellcheck chromium chromium-driver
  redis-server)
PYTHON_PACKAGES=("wyoming==1.10.2" "zeroconf==0.88.0")

log() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }

wanted=("${APT_PACKAGES[@]}")
[[ ${1:-} == --test ]] && wanted+=("${TEST_APT_PACKAGES[@]}")
missing=()
for pkg in "${wanted[@]}"; do
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
  # The tests run their own brokers: the packaged service is not wanted (where systemd runs it).
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null \
    && systemctl is-enabled mosquitto >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
  if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null \
    && systemctl is-enabled redis-server >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null; then
  log "cargo not found: install Rust (https://rustup.rs) and run this again"
  exit 1
fi

# python3-venv is a Debian package name; where Python comes from elsewhere (pyenv), venv is built in.
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

# The HACS integration's tests (hacs/tests) run in Home Assistant itself, which needs Python 3.13
# (hacs/requirements_test.txt says which release and why). HACS_PYTHON picks the interpreter;
# otherwise the newest pyenv 3.13, then python3.13 on PATH, then Debian's python3.13 (trixie).
# uv installs the ~140 packages in under a minute where pip takes several; it is pinned to the
# release that Home Assistant itself pins.
HACS_VENV=.venv-hacs
HACS_REQUIREMENTS=hacs/requirements_test.txt
UV=uv==0.6.10

find_python313() {
  local candidates=()
  [[ -n ${HACS_PYTHON:-} ]] && candidates+=("$HACS_PYTHON")
  mapfile -t -O "${#candidates[@]}" candidates < <(
    printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3.13 | sort -rV
  )
  candidates+=("$(command -v python3.13 || true)")
  for py in "${candidates[@]}"; do
    if [[ -n $py ]] && "$py" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' \
      2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

if [[ ${1:-} == --test ]]; then
  if ! py313=$(find_python313); then
    if apt-cache show python3.13-venv >/dev/null 2>&1; then
      log "installing python3.13 for the HACS integration's tests"
      if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
      "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3.13 python3.13-venv >/dev/null
      py313=$(find_python313)
    else
      log "Python 3.13 not found for the HACS integration's tests: install it (pyenv install 3.13)" \
        "or set HACS_PYTHON to a python3.13"
      exit 1
    fi
  fi
  want="$("$py313" -c 'import sys; print(sys.version.split()[0])') $UV $(grep -v '^#' "$HACS_REQUIREMENTS" | xargs)"
  if [[ ! -x $HACS_VENV/bin/python ]] || [[ $(cat "$HACS_VENV/.jarvis-packages" 2>/dev/null) != "$want" ]]; then
    log "creating $HACS_VENV (Python $want)"
    rm -rf "$HACS_VENV"
    "$py313" -m venv "$HACS_VENV"
    "$HACS_VENV/bin/python" -m pip install -q --disable-pip-version-check "$UV"
    "$HACS_VENV/bin/python" -m uv pip install -q --python "$HACS_VENV/bin/python" \
      -r "$HACS_REQUIREMENTS"
    echo "$want" >"$HACS_VENV/.jarvis-packages"
  fi
fi

# npm packages for the tests, each folder with its own package.json and lock (pinned versions):
# tests/a11y holds axe-core, the panel's automated accessibility check (tests/panel.rs);
# tests/broker the Aedes nodes of the lease tests' clustered broker (aedes 1.x needs Node.js 20).
# Node.js may come from elsewhere (nodesource bundles npm): only a missing npm is installed from apt.
NPM_TEST_DIRS=(tests/a11y tests/broker)
if [[ ${1:-} == --test ]]; then
  if ! command -v npm >/dev/null; then
    log "installing nodejs and npm"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((node_major < 20)); then
    log "Node.js $node_major found; the tests' npm packages (aedes 1.x) need 20 or later:" \
      "install it from NodeSource or Debian 13, then run this again"
    exit 1
  fi
  for dir in "${NPM_TEST_DIRS[@]}"; do
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.jarvis-lock.json"; then
      log "installing the npm packages of $dir"
      npm ci --prefix "$dir" --no-audit --no-fund --silent
      cp "$dir/package-lock.json" "$dir/node_modules/.jarvis-lock.json"
    fi
  done
fi

# cargo-deny checks every crate's licence in scripts/test.sh (see deny.toml).
CARGO_DENY_VERSION=0.20.2
if [[ ${1:-} == --test ]] && [[ $(cargo deny --version 2>/dev/null) != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  log "installing cargo-deny $CARGO_DENY_VERSION (a few minutes, once)"
  cargo install --quiet --locked "cargo-deny@$CARGO_DENY_VERSION"
fi

# cargo-fuzz only for scripts/fuzz.sh: the tests never pay for it.
CARGO_FUZZ_VERSION=0.13.2
if [[ ${1:-} == --fuzz ]] && [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (a few minutes, once)"
  cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

# ONNX Runtime 1.24.2 for Piper voices, from the PyPI wheel (the only registry that has it), unless
# the models directory already holds it. scripts/run.sh and scripts/test.sh point Jarvis at it.
ORT_LIB=libonnxruntime.so.1.24.2
models_dir=${JARVIS_MODELS_DIR:-$(cd .. && pwd)/shared/models}
if [[ ! -f $models_dir/onnxruntime/$ORT_LIB && ! -f .cache/onnxruntime/$ORT_LIB ]]; then
  log "fetching ONNX Runtime 1.24.2 from PyPI"
  mkdir -p .cache/onnxruntime
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --python-version 3.11 -d .cache/onnxruntime "onnxruntime==1.24.2"
  python3 - .cache/onnxruntime "$ORT_LIB" <<'PY'
import glob, sys, zipfile
folder, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{folder}/onnxruntime-1.24.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"onnxruntime/capi/{name}") as src, open(f"{folder}/{name}", "wb") as dst:
        dst.write(src.read())
PY
  rm -f .cache/onnxruntime/*.whl
fi

# A system bus and avahi-daemon for the zeroconf tests (containers and CI machines run neither).
if [[ ${1:-} == --test ]] && ! pgrep -x avahi-daemon >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    log "avahi-daemon is not running and this is not root: start it, or the zeroconf tests fail"
  else
    log "starting dbus and avahi-daemon for the zeroconf tests"
    mkdir -p /run/dbus
    if [[ ! -S /run/dbus/system_bus_socket ]] || ! pgrep -x dbus-daemon >/dev/null; then
      rm -f /run/dbus/pid /run/dbus/system_bus_socket
      dbus-daemon --system --fork
    fi
    rm -f /run/avahi-daemon/pid
    avahi-daemon --no-drop-root --no-rlimits --daemonize
    for _ in $(seq 50); do [[ -S /run/avahi-daemon/socket ]] && break; sleep 0.1; done
  fi
fi
