#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then formatting, lints
# (Rust and shell), licences, every test of the workspace (unit, integration, doc, and the Python
# reference peer), then the HACS integration's tests in Home Assistant against the built binary.
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
cargo test --workspace --locked --no-fail-fast "$@"

# The HACS integration (hacs/tests) against the real HTTP API of the binary the tests above
# built (so this build is a no-op after them).
cargo build --bin jarvis --locked
JARVIS_BIN=$PWD/target/debug/jarvis .venv-hacs/bin/python -m pytest hacs -q -p no:cacheprovider
