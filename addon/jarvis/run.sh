#!/usr/bin/env bash
# Start script of the Jarvis add-on (the image's entry point, under Docker's init):
#
#  1. /data/options.json (and the MQTT broker Supervisor hands out) become /data/jarvis.toml,
#     checked with `jarvis check-config`. A bad option is one line in the log, then the add-on
#     asks Supervisor to stop it and exits 0: stopped, not crash-looping under the watchdog.
#  2. The models the configuration needs are downloaded into /data/models on the first start,
#     with progress in the log, and resumed after an interrupted start; once there, nothing is
#     downloaded again (the add-on works offline).
#  3. `jarvis serve` runs; as soon as it answers `describe`, the Wyoming server is announced to
#     Home Assistant through Supervisor discovery. SIGTERM (add-on stop) is passed on to Jarvis,
#     which finishes the replies in flight.
#
# The tests (tests/addon.rs) run this script outside a container. These variables move what
# the add-on takes from its container:
#   JARVIS_ADDON_DATA    /data      options, configuration, models, databases
#   JARVIS_ADDON_CONFIG  /config    the user's own models and voices
#   JARVIS_SUPERVISOR_URL http://supervisor (with SUPERVISOR_TOKEN, set by Supervisor)
#   JARVIS_BIN           jarvis     the binary
#   JARVIS_ADDON_HOST    $HOSTNAME  the host name announced to Home Assistant
set -euo pipefail

data=${JARVIS_ADDON_DATA:-/data}
jarvis=${JARVIS_BIN:-jarvis}
config=$data/jarvis.toml
export JARVIS_ADDON_DATA=$data

# A bad option: `jarvis addon configure` printed the one line that names it. Stopping through
# Supervisor marks the add-on as stopped by hand, so the watchdog leaves it alone; exit 0 in
# any case, which Docker reports as a clean stop. Supervisor answers the stop request only
# once the container has stopped, and stops it with SIGTERM: that ends the wait, with 0.
stop_cleanly() {
  trap 'exit 0' TERM INT
  "$jarvis" addon stop >/dev/null 2>&1 &
  wait "$!" || true
  exit 0
}

status=0
"$jarvis" addon configure --options "$data/options.json" --out "$config" || status=$?
if ((status == 3)); then # jarvis::addon::EXIT_BAD_OPTIONS: an option is wrong
  stop_cleanly
elif ((status != 0)); then
  exit "$status"
fi
if ! "$jarvis" check-config "$config" >/dev/null; then
  stop_cleanly
fi

# SIGTERM (the add-on stopped) goes to whichever step runs: an interrupted download keeps its
# .part file and resumes at the next start; Jarvis finishes the replies in flight.
child=
stopping=0
# shellcheck disable=SC2317 # called by the trap
on_term() {
  stopping=1
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null || true
  fi
}
trap on_term TERM INT

# Runs "$@" in the background and waits for it to end, even across signals; its status.
run_child() {
  "$@" &
  child=$!
  local status=0
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do
    status=0
    wait "$child" || status=$?
  done
  child=
  return "$status"
}

status=0
run_child "$jarvis" models --config "$config" pull --defaults || status=$?
if ((stopping)); then
  exit 0
elif ((status != 0)); then
  echo "jarvis: the models could not all be downloaded (see above); restart the add-on to" \
    "resume the download" >&2
  exit 1
fi

# Announced as soon as Jarvis answers `describe` (which `jarvis addon announce` waits for).
"$jarvis" addon announce --host "${JARVIS_ADDON_HOST:-$HOSTNAME}" &
announce=$!
status=0
run_child "$jarvis" serve --config "$config" || status=$?
kill "$announce" 2>/dev/null || true
wait "$announce" 2>/dev/null || true
# Stopped by the user: a clean stop, whatever Jarvis was doing when the signal came.
if ((stopping)); then
  exit 0
fi
exit "$status"
