"""Load for `scripts/bench.sh memory`: speech-to-text, text-to-speech and wake-word streams over
Wyoming against one `jarvis serve`, with the reference Python client (the `wyoming` package).

    memory_load.py PORT JFK_WAV PID

Prints VmRSS / VmHWM of PID after each stage."""

import asyncio
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize
from wyoming.wake import Detect

PORT = int(sys.argv[1])
with wave.open(sys.argv[2]) as w:
    JFK = w.readframes(w.getnframes())
PID = sys.argv[3]
# 28 s of speech: whisper's whole window, as the longest request (`stt.max_audio_secs` 30) and
# the whole-window decode of a doubtful short command use it.
WINDOW = (JFK * 3)[: 28 * 16000 * 2]
# Replies as long as Jarvis gives them, and one much longer.
TEXTS = [
    "The cluster is healthy: three nodes online, twelve guests running.",
    "Reboot agent1? Its 1 running guest goes down with it: nextcloud.",
    "Last night's backups: 41 of 42 guests backed up; media-server failed because the storage "
    "backup-nas was full. The job ran from 1:00 to 2:14, and local-lvm is now 81 percent full, "
    "so you may want to prune old backups before tonight's run.",
]


def memory(stage):
    fields = {}
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    print(f"{stage:<34} VmRSS {fields['VmRSS']:6.1f} MB   VmHWM {fields['VmHWM']:6.1f} MB", flush=True)


async def stt(audio=JFK):
    async with AsyncTcpClient("127.0.0.1", PORT) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(16000, 2, 1).event())
        for i in range(0, len(audio), 3200):
            await client.write_event(AudioChunk(16000, 2, 1, audio[i : i + 3200]).event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return


async def tts(text):
    async with AsyncTcpClient("127.0.0.1", PORT) as client:
        await client.write_event(Synthesize(text=text).event())
        while (event := await client.read_event()) is not None:
            if AudioStop.is_type(event.type):
                return


async def wake(streams, seconds):
    async def one():
        async with AsyncTcpClient("127.0.0.1", PORT) as client:
            await client.write_event(Detect().event())
            await client.write_event(AudioStart(16000, 2, 1).event())
            begun = time.monotonic()
            for i in range(int(seconds / 0.08)):
                part = JFK[(i * 2560) % (len(JFK) - 2560) :][:2560]
                await client.write_event(AudioChunk(16000, 2, 1, part).event())
                await asyncio.sleep(max(0.0, begun + (i + 1) * 0.08 - time.monotonic()))

    await asyncio.gather(*(one() for _ in range(streams)))


async def main():
    memory("loaded, before any request")
    await asyncio.gather(stt(), stt())
    memory("after 2 transcriptions at once")
    await stt(WINDOW)
    memory("after a 28 s transcription")
    for text in TEXTS:
        await tts(text)
    await asyncio.gather(*(tts(text) for text in TEXTS))
    memory("after 6 syntheses (3 at once)")
    await wake(20, 5)
    memory("after 20 wake-word streams (5 s)")
    await asyncio.gather(wake(20, 8), stt(), stt(WINDOW), *(tts(text) for text in TEXTS))
    memory("after all of them at once")


asyncio.run(main())
