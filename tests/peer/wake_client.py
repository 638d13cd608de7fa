"""Streams a WAV file to a Wyoming wake-word server as Home Assistant does, and prints what came back.

    wake_client.py PORT WAV EXPECTED [NAME...]

HA order: detect (with the names, or null), audio-start, 10 ms chunks, and never audio-stop. Events
are read while the audio is still being written, until EXPECTED detections (or an error) have
arrived; then the connection is closed, as HA closes it. Prints
{"detections": [{"name": ..., "timestamp": ...}], "error": null or code, "events": [types]}.
"""

import asyncio
import json
import sys
import wave

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.wake import Detect, Detection

TIMEOUT = 60


async def main(port, path, expected, names):
    with wave.open(path, "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    step = rate // 100 * width * channels
    result = {"detections": [], "error": None, "events": []}
    async with AsyncTcpClient("127.0.0.1", port) as client:

        async def send():
            await client.write_event(Detect(names=names or None).event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            for i in range(0, len(frames), step):
                chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=frames[i:i + step])
                await client.write_event(chunk.event())

        async def receive():
            while len(result["detections"]) < expected:
                event = await client.read_event()
                if event is None:
                    return
                result["events"].append(event.type)
                if Detection.is_type(event.type):
                    d = Detection.from_event(event)
                    result["detections"].append({"name": d.name, "timestamp": d.timestamp})
                elif Error.is_type(event.type):
                    result["error"] = Error.from_event(event).code
                    return

        sender = asyncio.create_task(send())
        await asyncio.wait_for(receive(), timeout=TIMEOUT)
        sender.cancel()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
