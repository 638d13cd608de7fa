#!/usr/bin/env bash
# Fuzzes what Jarvis reads from the network and from disk (fuzz/, cargo-fuzz with libFuzzer), on
# the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the sanitizer-coverage flags). Outside CI.
#
#   scripts/fuzz.sh                     every target, 600 s each, one after another
#   scripts/fuzz.sh TARGET [SECONDS]    one target (default 600 s)
#   scripts/fuzz.sh all SECONDS         every target, SECONDS each
#   FUZZ_JOBS=4 scripts/fuzz.sh         four targets at a time
#
# Targets: wyoming_codec http_command http_event mqtt_command proxmox_answer frigate_payload
# config onnx_model. The seeds in fuzz/corpus/<target> (from the tests' inputs) are only read;
# what the fuzzer finds goes to fuzz/target/corpus/<target>, kept between runs (not committed).
# A crash stops its target, is saved in fuzz/artifacts/<target>/ and makes the script fail:
# fix it, and keep the input as a regression test (tests/fuzz_regressions.rs feeds
# tests/data/fuzz/<target>/*). Without address sanitizer: Jarvis forbids unsafe code, and the
# C libraries it links (whisper.cpp, espeak-ng, SQLite) are not on any fuzzed path.
# Each target's libFuzzer output is in fuzz/target/logs/<target>.log; a summary line per
# target (executions, coverage, crashes) ends the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --fuzz

TARGETS=(wyoming_codec http_command http_event mqtt_command proxmox_answer frigate_payload config
  onnx_model)
target=${1:-all}
seconds=${2:-600}
if [[ $target == all ]]; then
  chosen=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $target "* ]]; then
  chosen=("$target")
else
  echo "fuzz.sh: unknown target $target; one of: all ${TARGETS[*]}" >&2
  exit 2
fi

export RUSTC_BOOTSTRAP=1
# Sixteen codegen units: a far quicker build for a little slower fuzzing.
FUZZ_FLAGS=(-s none --codegen-units 16)
cargo fuzz build "${FUZZ_FLAGS[@]}"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')

mkdir -p fuzz/target/logs
# FUZZ_JOBS targets at a time (default 1): on a machine with cores to spare, the whole set runs
# in a fraction of the time; each target still gets its SECONDS of wall time.
jobs=${FUZZ_JOBS:-1}

# Fuzzes target $1 for $seconds; prints its summary line, returns non-zero on a crash.
fuzz_one() {
  local t=$1 status=0 log execs last cov ft corpus
  mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t"
  log=fuzz/target/logs/$t.log
  echo "fuzz.sh: $t for $seconds s" >&2
  # The binary built above, run directly (`cargo fuzz run` would build again first).
  "fuzz/target/$TRIPLE/release/$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" \
    -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*(cov|ft):' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(find "fuzz/target/corpus/$t" -type f | wc -l)
  local crash="no crash"
  ((status == 0)) || crash="CRASH (see $log and fuzz/artifacts/$t/)"
  echo "$t: ${seconds}s, ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus $corpus, $crash" \
    >"fuzz/target/logs/$t.summary"
  return "$status"
}

failed=0
running=0
for t in "${chosen[@]}"; do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
for t in "${chosen[@]}"; do
  echo "fuzz.sh: $(cat "fuzz/target/logs/$t.summary")" >&2
done
exit "$failed"
