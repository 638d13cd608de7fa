"""A third-party wake word backend on the reference Python Wyoming library (wyoming 1.10.2).

    wake_server.py PORT

Serves `info` (one wake program with the wake word `python_word`) and, after `detect` and
`audio-start`, sends a `detection` of `python_word` once it has heard 1 s of audio (`not-detected`
at `audio-stop` before that). A `detect` naming only other wake words gets an `error`, as the
reference openWakeWord server does. Prints "ready" once listening.
"""

import asyncio
import sys

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, WakeModel, WakeProgram
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.wake import Detect, Detection, NotDetected

WORD = "python_word"
ATTRIBUTION = Attribution(name="test", url="https://example.invalid")
INFO = Info(
    wake=[
        WakeProgram(
            name="python-wake",
            description="reference server",
            attribution=ATTRIBUTION,
            installed=True,
            version="1",
            models=[
                WakeModel(
                    name=WORD,
                    description="one second of anything",
                    phrase="python word",
                    attribution=ATTRIBUTION,
                    installed=True,
                    languages=["en"],
                    version="1",
                )
            ],
        )
    ]
)


class Handler(AsyncEventHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heard = 0
        self.detected = False

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(INFO.event())
        elif Detect.is_type(event.type):
            names = Detect.from_event(event).names
            if names and WORD not in names:
                await self.write_event(Error(text=f"no wake word {names}", code="unknown").event())
        elif AudioStart.is_type(event.type):
            self.heard = 0
            self.detected = False
        elif AudioChunk.is_type(event.type):
            self.heard += len(AudioChunk.from_event(event).audio)
            if self.heard >= 32000 and not self.detected:
                self.detected = True
                await self.write_event(Detection(name=WORD, timestamp=1000).event())
        elif AudioStop.is_type(event.type):
            if not self.detected:
                await self.write_event(NotDetected().event())
        return True


async def main(port):
    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
    await server.start(Handler)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
