"""Sends a WAV file to a Wyoming STT server exactly as Home Assistant does, and prints the result.

    stt_client.py PORT WAV [LANGUAGE]

HA 2026.10+ order: transcribe, audio-start, 10 ms chunks, audio-stop, then read until a
transcript (skipping other events). Prints {"text": ..., "language": ..., "events": [types]}.
"""

import asyncio
import json
import sys
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error


async def main(port, path, language):
    with wave.open(path, "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    step = rate // 100 * width * channels
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(frames), step):
            chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=frames[i:i + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        seen = []
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=60)
            if event is None:
                print(json.dumps({"closed": True, "events": seen}))
                return
            seen.append(event.type)
            if Transcript.is_type(event.type):
                t = Transcript.from_event(event)
                print(json.dumps({"text": t.text, "language": t.language, "events": seen}))
                return
            if Error.is_type(event.type):
                e = Error.from_event(event)
                print(json.dumps({"error": e.code, "text": e.text, "events": seen}))
                return


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "en"))
