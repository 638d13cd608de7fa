#!/usr/bin/env bash
# Builds and runs `jarvis serve` on the default configuration (Wyoming on 0.0.0.0:10700, HTTP on
# 0.0.0.0:10701), from a fresh machine: models the configuration needs and that are missing are
# downloaded first (`jarvis models pull --defaults`, with progress, verified, resumable). Extra
# arguments go to `jarvis serve`, e.g.
#   scripts/run.sh --config config/jarvis.toml --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

# The shared model directory beside the checkout, when there is one (development machines).
if [[ -z ${JARVIS_MODELS_DIR:-} && -d ../shared/models ]]; then
  JARVIS_MODELS_DIR=$(cd ../shared/models && pwd)
  export JARVIS_MODELS_DIR
fi
# The default places under /var/lib/jarvis need root; elsewhere keep them beside the checkout.
if ! { mkdir -p /var/lib/jarvis 2>/dev/null && [[ -w /var/lib/jarvis ]]; }; then
  export JARVIS_AUDIT_PATH=${JARVIS_AUDIT_PATH:-$PWD/.cache/jarvis/audit.jsonl}
  export JARVIS_EVENTS_PATH=${JARVIS_EVENTS_PATH:-$PWD/.cache/jarvis/events.db}
  export JARVIS_MODELS_DIR=${JARVIS_MODELS_DIR:-$PWD/.cache/jarvis/models}
fi
# ONNX Runtime fetched by bootstrap.sh when the models directory has none.
if [[ -z ${JARVIS_ONNXRUNTIME:-} && -f .cache/onnxruntime/libonnxruntime.so.1.24.2 &&
      ! -f ${JARVIS_MODELS_DIR:-/var/lib/jarvis/models}/onnxruntime/libonnxruntime.so.1.24.2 ]]; then
  export JARVIS_ONNXRUNTIME=$PWD/.cache/onnxruntime/libonnxruntime.so.1.24.2
fi

cargo build --release --locked --bin jarvis
jarvis=target/release/jarvis
# `models pull` reads the configuration `serve` will use.
config=()
args=("$@")
for i in "${!args[@]}"; do
  case ${args[$i]} in
    --config) config=(--config "${args[$((i + 1))]:-}") ;;
    --config=*) config=("${args[$i]}") ;;
  esac
done
"$jarvis" models "${config[@]}" pull --defaults
exec "$jarvis" serve "$@"
