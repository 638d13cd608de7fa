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
# ONNX Runtime fetched by bootstrap.sh when the models directory has none.
if [[ -z ${JARVIS_ONNXRUNTIME:-} && -f .cache/onnxruntime/libonnxruntime.so.1.24.2 &&
      ! -f ${JARVIS_MODELS_DIR:-/var/lib/jarvis/models}/onnxruntime/libonnxruntime.so.1.24.2 ]]; then
  export JARVIS_ONNXRUNTIME=$PWD/.cache/onnxruntime/libonnxruntime.so.1.24.2
fi
# The audit log's default place needs root; elsewhere keep it beside the checkout.
if [[ -z ${JARVIS_AUDIT_PATH:-} ]] && ! { mkdir -p /var/lib/jarvis 2>/dev/null && [[ -w /var/lib/jarvis ]]; }; then
  export JARVIS_AUDIT_PATH=$PWD/.cache/jarvis/audit.jsonl
fi
exec cargo run --release --locked --bin jarvis -- serve "$@"
