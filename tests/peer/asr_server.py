"""A third-party speech-to-text backend on the reference Python Wyoming library (wyoming 1.10.2).

    asr_server.py PORT

Serves `info` (one program with the model `python-echo`, English) and answers each
`transcribe` + audio with the transcript "python heard N bytes". Prints "ready" once listening.
"""

import asyncio
import sys

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStop
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncServer

ATTRIBUTION = Attribution(name="test", url="https://example.invalid")
INFO = Info(
    asr=[
        AsrProgram(
            name="python-echo",
            description="reference server",
            attribution=ATTRIBUTION,
            installed=True,
            version="1",
            models=[
                AsrModel(
                    name="python-echo",
                    description="counts bytes",
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

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(INFO.event())
        elif AudioChunk.is_type(event.type):
            self.heard += len(AudioChunk.from_event(event).audio)
        elif AudioStop.is_type(event.type):
            await self.write_event(Transcript(text=f"python heard {self.heard} bytes").event())
            return False
        return True


async def main(port):
    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
    await server.start(Handler)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
