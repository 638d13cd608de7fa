#!/usr/bin/env bash
# Benchmarks that print figures (never timed tests):
#   1. Wyoming codec: encode/decode time per event and throughput, 320-byte audio chunks and
#      1 MB payloads (criterion; events/s = 1 / time per event).
#   2. Idle memory of `jarvis serve` with no models loaded: RSS once it is serving, and again
#      after 200 describe round trips (so allocator warm-up is counted).
#   3. Speech-to-text with the real models: last audio byte -> transcript for jfk.wav and a
#      2-second command, real-time factor, end of speech -> transcript with endpointing, peak RSS.
#
#   4. Text-to-speech with the real Piper voice: first audio-chunk and real-time factor for 1-,
#      2- and 4-sentence texts.
#   5. MQTT discovery with 10 nodes and 1000 guests against a real Mosquitto: full discovery
#      time, CPU time and messages per poll when nothing changed, and with every guest changing.
#   6. Homelab brain: intent recognition over 10 nodes / 1000 guests (p50/p99), a command with a
#      warm Proxmox cache, and a status question over Wyoming end to end (fake Proxmox API).
#   7. Wake word with the real openWakeWord models: CPU time per second of audio per stream (1
#      and 100 real-time streams), detection latency after the phrase ends, recall and false
#      accepts on clips generated with Piper and espeak-ng.
#
#   8. Frigate ingestion: frigate/events messages through a real Mosquitto into the event store
#      (parse time per message; events/s end to end at QoS 1 and QoS 0).
#   9. Event store with a million events (8 cameras over 30 days): fill rate, size per million
#      events, peak RSS with the store open, p50/p99 of the brain's and the entities' questions
#      with their query plans.
#  10. The web panel: page weight (the embedded HTML, CSS and JavaScript, gzip -9), command ->
#      feed entry in a real headless Chromium, and speech-to-text / first TTS audio with 50 panel
#      feeds open (and busy) against none (needs chromium and chromium-driver:
#      scripts/bootstrap.sh --test).
#
#  11. Backup questions over 10 nodes / 1000 guests with 30 days of vzdump jobs: the cold read,
#      then p50/p99 of each question with a warm cache (goal: 50 ms).
#
#  12. Speech backends: audio-stop -> transcript and synthesize -> first audio through Jarvis
#      routing to a remote backend against the same backend directly (goal: 5 ms added), and
#      failover time when the first STT backend refuses, sends garbage, dies at audio-stop (audio
#      replayed) or stays silent. Wake word: detection latency through Jarvis to a remote wake
#      backend against the backend directly, and failover time when the remote dies mid-stream.
#
#  13. Memory with every service loaded (release build, default models, TTS cache off): VmRSS and
#      VmHWM once serving, then after transcriptions, syntheses, 20 wake-word streams and all of
#      them at once (the reference Python client; goal: VmHWM <= 300 MB); for a small cluster,
#      then with the vocabulary prompt of a 1000-guest cluster (the soak's guest names).
#
#  14. Brain lease: takeover time of the standby brain when the active one is killed (last
#      will), stops cleanly (release) or freezes (keep-alive, or the lease running out); then
#      on a three-node Aedes cluster (tests/broker): the holder killed, and the holder's node killed.
#
#   scripts/bench.sh [codec|rss|stt|tts|mqtt|brain|wake|wer|frigate|events|backups|panel|backends|memory|lease]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >&2
if (($#)); then what=("$@"); else what=(codec rss stt tts mqtt brain wake wer frigate events backups panel backends memory lease); fi
export JARVIS_MODELS_DIR=${JARVIS_MODELS_DIR:-$(cd .. && pwd)/shared/models}

for item in "${what[@]}"; do
  case $item in
  codec)
    echo "== codec (cargo bench -p wyoming --bench codec)"
    cargo bench -p wyoming --bench codec -- --noplot 2>/dev/null | grep -E '^audio|time:|thrpt:'
    ;;
  rss)
    echo "== idle RSS of jarvis serve (release build, no models)"
    cargo build --release --locked --bin jarvis 2>/dev/null
    log=$(mktemp)
    no_models=$(mktemp --suffix .toml)
    printf '[stt]\nenabled = false\n[tts]\nenabled = false\n' >"$no_models"
    target/release/jarvis serve --config "$no_models" --wyoming-addr 127.0.0.1:0 \
      --http-addr 127.0.0.1:0 --no-zeroconf --log-format json 2>"$log" &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; rm -f "$log" "$no_models"' EXIT
    for _ in $(seq 100); do grep -q 'jarvis is serving' "$log" && break; sleep 0.1; done
    port=$(grep -o '"wyoming":"127.0.0.1:[0-9]*"' "$log" | grep -o '[0-9]*"$' | tr -d '"')
    rss() { awk '/^(VmRSS|VmHWM)/ {printf "%s %.1f MB  ", $1, $2/1024}' /proc/$pid/status; echo; }
    echo -n "serving, idle:            "; rss
    python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
for _ in range(200):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b'{"type":"describe"}\n')
        f = s.makefile("rb")
        header = f.readline()
        assert b'"info"' in header, header
PY
    echo -n "after 200 describes:      "; rss
    kill -TERM $pid; wait $pid || true
    ;;
  stt)
    echo "== speech-to-text (cargo bench --bench stt)"
    cargo bench --locked --bench stt 2>/dev/null
    ;;
  tts)
    echo "== text-to-speech (cargo bench --bench tts)"
    cargo bench --locked --bench tts 2>/dev/null
    ;;
  mqtt)
    echo "== mqtt discovery (cargo bench --bench mqtt; needs mosquitto: scripts/bootstrap.sh --test)"
    cargo bench --locked --bench mqtt 2>/dev/null
    ;;
  lease)
    echo "== brain lease takeover (cargo bench --bench lease; needs mosquitto: scripts/bootstrap.sh --test)"
    cargo bench --locked --bench lease 2>/dev/null
    ;;
  frigate)
    echo "== frigate ingestion (cargo bench --bench frigate; needs mosquitto: scripts/bootstrap.sh --test)"
    cargo bench --locked --bench frigate 2>/dev/null
    ;;
  brain)
    echo "== homelab brain (cargo bench --bench brain)"
    cargo bench --locked --bench brain 2>/dev/null
    ;;
  backups)
    echo "== backup questions, 1000 guests, 30 days of vzdump (cargo bench --bench backups)"
    cargo bench --locked --bench backups 2>/dev/null
    ;;
  wake)
    echo "== wake word (cargo bench --bench wake)"
    scripts/bootstrap.sh --test >&2 # espeak-ng speaks the test clips
    cargo bench --locked --bench wake 2>/dev/null
    ;;
  wer)
    echo "== speech-to-text WER (cargo bench --bench wer)"
    scripts/bootstrap.sh --test >&2 # espeak-ng speaks the clips
    # The third-party client users compare servers with; not needed by the tests or CI.
    venv=.cache/wyoming-bench-venv
    if [ ! -x $venv/bin/wyoming-bench ]; then
      python3 -m venv $venv >&2 && $venv/bin/pip install -q wyoming-bench==2026.10.0 >&2 ||
        echo "wyoming-bench could not be installed: its figures are skipped" >&2
    fi
    if [ "${JARVIS_WER_REFERENCE:-}" = start ]; then
      # The reference server (pywhispercpp's prebuilt whisper.cpp) on the same tiny.en model.
      ref=.cache/wyoming-whisper-cpp-venv
      [ -x $ref/bin/python ] || { python3 -m venv $ref && $ref/bin/pip install -q wyoming-whisper-cpp==2.6.1; } >&2
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      $ref/bin/python -m wyoming_whisper_cpp --model tiny.en --language en \
        --data-dir "$JARVIS_MODELS_DIR/whisper" --uri "tcp://127.0.0.1:$port" 2>/dev/null &
      ref_pid=$!
      trap 'kill $ref_pid 2>/dev/null || true' EXIT
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
      export JARVIS_WER_REFERENCE=127.0.0.1:$port
    fi
    cargo bench --locked --bench wer 2>/dev/null
    ;;
  backends)
    echo "== speech-to-text backends (cargo test --test stt_backends bench -- --ignored)"
    for t in stt_backends tts_backends wake_backends; do
      cargo test --locked --test $t bench -- --ignored --nocapture 2>/dev/null |
        grep -E '^(routing|failover|wake)'
    done
    ;;
  events)
    echo "== event store (cargo bench --bench events)"
    cargo bench --locked --bench events 2>/dev/null
    ;;
  panel)
    echo "== web panel (page weight; cargo test --test panel, Chromium over WebDriver)"
    for f in src/panel/assets/*; do
      printf '%s: %d bytes, %d gzipped\n' "$f" "$(wc -c <"$f")" "$(gzip -9c "$f" | wc -c)"
    done
    printf 'page weight: %d bytes gzipped (goal <= 200 kB)\n' "$(cat src/panel/assets/* | gzip -9c | wc -c)"
    cargo test --locked --test panel -- --nocapture --include-ignored \
      the_panel_logs_in_follows_the_feed_confirms_and_talks \
      panel_bench_fifty_open_panels_leave_the_voice_figures_alone 2>&1 | grep 'panel bench'
    ;;
  memory)
    echo "== memory with every service loaded (release build; scripts/bench/memory_load.py)"
    scripts/bootstrap.sh --test >&2 # the reference Python client in .venv
    cargo build --release --locked --bin jarvis 2>/dev/null
    # Twice: a small cluster (no vocabulary prompt), then the prompt a 1000-guest cluster gives
    # whisper (the soak's guest names as `stt.vocabulary`: ~600 characters, ~220 tokens).
    for cluster in small 1000-guests; do
      echo "-- $cluster"
      dir=$(mktemp -d)
      printf '[tts]\ncache = false\n' >"$dir/jarvis.toml"
      if [[ $cluster == 1000-guests ]]; then
        python3 - >>"$dir/jarvis.toml" <<'PY'
words = ["media", "backup", "web", "proxy", "mail", "git", "cache", "vault", "photo", "build"]
names = [f"pve{n}" for n in range(10)]
names += [f"{words[i % 10]}-{words[(i // 10) % 10]}-{i}" for i in range(1000)]
print("[stt]\nvocabulary = [" + ", ".join(f'"{n}"' for n in names) + "]")
PY
      fi
      JARVIS_AUDIT_PATH=$dir/audit.jsonl JARVIS_EVENTS_PATH=$dir/events.db \
        target/release/jarvis serve --config "$dir/jarvis.toml" --wyoming-addr 127.0.0.1:0 \
        --http-addr 127.0.0.1:0 --no-zeroconf --log-format json 2>"$dir/log" &
      pid=$!
      for _ in $(seq 600); do grep -q 'jarvis is serving' "$dir/log" && break; sleep 0.1; done
      port=$(grep -o '"wyoming":"127.0.0.1:[0-9]*"' "$dir/log" | grep -o '[0-9]*"$' | tr -d '"')
      .venv/bin/python scripts/bench/memory_load.py "$port" \
        "$JARVIS_MODELS_DIR/whisper/samples/jfk.wav" "$pid"
      kill -TERM $pid
      wait $pid || true
      rm -rf "$dir"
    done
    ;;
  *) echo "unknown benchmark $item" >&2; exit 2 ;;
  esac
done
