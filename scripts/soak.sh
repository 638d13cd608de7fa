#!/usr/bin/env bash
# The soak (issue #18; not run by CI): the release `jarvis serve` for SECONDS (default 1800)
# under mixed load (20 real-time wake-word streams, speech-to-text and text-to-speech requests,
# HTTP commands, MQTT discovery over 1000 guests, Frigate events at 50/s) with faults (the broker
# restarted 3 times, a Proxmox outage, a storm of 1000 connections, SIGTERM at the end).
# Prints errors, p50/p99 per service per window, RSS and fds, and the checks (audit log and
# event store complete, RSS flat, p99 within 2x idle, peak RSS <= 300 MB); exits 1
# when a check fails. See benches/soak.rs.
#
#   scripts/soak.sh [SECONDS]
#
# Environment: JARVIS_BIN runs that binary instead of the one built here; SOAK_OUT is where the
# report, memory.csv, Jarvis's log, audit log and event store are kept (default target/soak).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}
scripts/bootstrap.sh >&2
export JARVIS_MODELS_DIR=${JARVIS_MODELS_DIR:-$(cd .. && pwd)/shared/models}
# `cargo bench` builds the release binary the bench runs (CARGO_BIN_EXE_jarvis).
SOAK_SECS=$secs cargo bench --locked --bench soak
