#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then formatting, lints
# (Rust and shell), and every test of the workspace (unit, integration, doc, and the Python
# reference peer).
#
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test

export JARVIS_MODELS_DIR=${JARVIS_MODELS_DIR:-$(cd .. && pwd)/shared/models}
export WYOMING_PYTHON=${WYOMING_PYTHON:-$PWD/.venv/bin/python}

cargo fmt --all -- --check
shellcheck scripts/*.sh .ci/run addon/jarvis/run.sh addon/build-local.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
# Licences of everything linked (deny.toml); advisories need GitHub, which CI cannot reach.
cargo deny --locked check licenses bans sources
cargo test --workspace --locked "$@"
