"""Drives Jarvis with the reference Python client the way Home Assistant does.

    ha_client.py PORT WAKE_WAV

Each operation on its own connection, starting straight with the request (protocol doc §3.4):
describe (parsed with Info.from_event, as HA does), then an STT request with audio, a wake
request streaming WAKE_WAV (16 kHz mono, no audio-stop, as HA), a TTS request, a conversation
`transcript` (as HA's conversation agent sends it) and a `recognize`. Prints one JSON line with
what came back.
"""

import asyncio
import json
import sys

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection

TIMEOUT = 10


async def one(port, events):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event.event())
        # HA skips events it does not wait for (transcript-start/chunk among them).
        reply = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
        while reply is not None and reply.type in ("transcript-start", "transcript-chunk"):
            reply = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
        if reply is None:
            return None
        if Error.is_type(reply.type):
            err = Error.from_event(reply)
            return {"error": err.code, "text": err.text}
        if Info.is_type(reply.type):
            info = Info.from_event(reply)
            return {
                "asr": len(info.asr), "tts": len(info.tts), "wake": len(info.wake),
                "handle": len(info.handle), "intent": len(info.intent),
                "satellite": info.satellite is not None,
            }
        if Handled.is_type(reply.type):
            return {"handled": Handled.from_event(reply).text}
        if NotHandled.is_type(reply.type):
            return {"not_handled": NotHandled.from_event(reply).text}
        if Intent.is_type(reply.type):
            intent = Intent.from_event(reply)
            return {"intent": intent.name, "entities": {e.name: e.value for e in intent.entities}}
        if NotRecognized.is_type(reply.type):
            return {"not_recognized": NotRecognized.from_event(reply).text}
        if Detection.is_type(reply.type):
            detection = Detection.from_event(reply)
            return {"detection": detection.name, "timestamp": detection.timestamp}
        if Transcript.is_type(reply.type):
            return {"transcript": Transcript.from_event(reply).text}
        if AudioStart.is_type(reply.type):
            # Read the rest of the audio, as HA does, until audio-stop.
            start = AudioStart.from_event(reply)
            total = 0
            while True:
                event = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
                if event is None or AudioStop.is_type(event.type):
                    break
                if AudioChunk.is_type(event.type):
                    total += len(AudioChunk.from_event(event).audio)
            return {"audio_rate": start.rate, "audio_bytes": total}
        return {"type": reply.type}


def wav_audio(path):
    import wave

    with wave.open(path, "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        frames = wav.readframes(wav.getnframes())
    # One second of silence after the phrase, in 10 ms chunks, as HA streams it.
    frames += bytes(32000)
    events = [AudioStart(rate=16000, width=2, channels=1)]
    events += [
        AudioChunk(rate=16000, width=2, channels=1, audio=frames[i:i + 320])
        for i in range(0, len(frames), 320)
    ]
    return events


async def main(port, wake_wav):
    audio = [AudioStart(rate=16000, width=2, channels=1)]
    audio += [AudioChunk(rate=16000, width=2, channels=1, audio=bytes(320)) for _ in range(50)]
    results = {
        "describe": await one(port, [Describe()]),
        "stt": await one(port, [Transcribe(language="en")] + audio + [AudioStop()]),
        "wake": await one(port, [Detect(names=["hey_jarvis"])] + wav_audio(wake_wav)),
        "tts": await one(port, [Synthesize(text="Hello from Home Assistant.")]),
        "handle": await one(port, [Transcript(
            text="What's the status of node pve?", language="en",
            context={"conversation_id": "01HAEXAMPLE"})]),
        "handle_unknown": await one(port, [Transcript(
            text="Make me a sandwich.", language="en",
            context={"conversation_id": "01HAEXAMPLE"})]),
        "recognize": await one(port, [Recognize(text="Start VM one oh one.")]),
        "not_recognized": await one(port, [Recognize(text="Make me a sandwich.")]),
    }
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
