#!/usr/bin/env bash
# Builds and runs `jarvis serve` on the default configuration (Wyoming on 0.0.0.0:10700, HTTP on
# 0.0.0.0:10701), from a fresh machine. Extra arguments go to `jarvis serve`, e.g.
#   scripts/run.sh --config config/jarvis.toml --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# The shared model directory beside the checkout, when there is one (development machines).
if [[ -z ${JARVIS_MODELS_DIR:-} && -d ../shared/models ]]; then
  export JARVIS_MODELS_DIR=$(cd ../shared/models && pwd)
fi
exec cargo run --release --locked --bin jarvis -- serve "$@"
