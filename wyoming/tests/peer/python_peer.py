"""The reference Python `wyoming` package as a test peer for the Rust crate.

    python_peer.py echo-server      listen on 127.0.0.1:0, print the port, echo every event back
                                    after parsing it with the typed Python class (so the Python
                                    parser checks what Rust wrote, and Rust checks what Python wrote)
    python_peer.py client PORT      send one event of every type, built with the typed Python
                                    classes, to an echo server; check that each comes back equal
"""

import asyncio
import sys

import wyoming
from wyoming import asr, audio, handle, info, intent, ping, pipeline, satellite, snd, timer, tts, vad, wake
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.user_event import UserEvent

TYPED = [
    audio.AudioStart, audio.AudioChunk, audio.AudioStop,
    info.Describe, info.Info, info.SelectProgram,
    asr.Transcribe, asr.Transcript, asr.TranscriptStart, asr.TranscriptChunk, asr.TranscriptStop,
    tts.Synthesize, tts.SynthesizeStart, tts.SynthesizeChunk, tts.SynthesizeStop, tts.SynthesizeStopped,
    wake.Detect, wake.Detection, wake.NotDetected,
    vad.VoiceStarted, vad.VoiceStopped,
    intent.Recognize, intent.Intent, intent.NotRecognized, intent.IntentsStart, intent.IntentsStop,
    handle.Handled, handle.NotHandled, handle.HandledStart, handle.HandledChunk, handle.HandledStop,
    ping.Ping, ping.Pong, Error, UserEvent, snd.Played,
    satellite.RunSatellite, satellite.PauseSatellite, satellite.SatelliteConnected,
    satellite.SatelliteDisconnected, satellite.StreamingStarted, satellite.StreamingStopped,
    pipeline.RunPipeline,
    timer.TimerStarted, timer.TimerUpdated, timer.TimerCancelled, timer.TimerFinished,
]


def typed_class(event_type):
    for cls in TYPED:
        if cls.is_type(event_type):
            return cls
    return None


class EchoHandler(AsyncEventHandler):
    async def handle_event(self, event: Event) -> bool:
        cls = typed_class(event.type)
        if cls is not None:
            reply = cls.from_event(event).event()
            if cls is audio.AudioChunk:
                assert reply.payload == event.payload
        else:
            reply = event
        await self.write_event(reply)
        return True


async def echo_server():
    server = AsyncServer.from_uri("tcp://127.0.0.1:0")
    await server.start(EchoHandler)
    port = server._server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Run until the test closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def attribution():
    return info.Attribution(name="Jarvis", url="https://example.invalid/jarvis")


def large_info(voices):
    a = attribution()
    return info.Info(
        asr=[info.AsrProgram(name="jarvis-stt", attribution=a, installed=True, description="whisper.cpp",
                             version="0.1.0",
                             models=[info.AsrModel(name="tiny.en", attribution=a, installed=True,
                                                   description=None, version=None, languages=["en"])],
                             supports_transcript_streaming=True, requires_external_vad=False,
                             prefers_auto_gain_enabled=False)],
        tts=[info.TtsProgram(name="jarvis-tts", attribution=a, installed=True, description=None, version=None,
                             voices=[info.TtsVoice(name=f"en_US-voice{i}-medium", attribution=a, installed=True,
                                                   description=f"Voice {i} — “quoted”", version="1.0.0",
                                                   languages=["en_US"],
                                                   speakers=[info.TtsVoiceSpeaker(name="p1")])
                                     for i in range(voices)],
                             supports_synthesize_streaming=True)],
        handle=[info.HandleProgram(name="jarvis", attribution=a, installed=True, description="Homelab",
                                   version="0.1.0",
                                   models=[info.HandleModel(name="jarvis", attribution=a, installed=True,
                                                            description=None, version=None, languages=["en"])],
                                   supports_handled_streaming=True, supports_home_control=True)],
        intent=[info.IntentProgram(name="jarvis-intent", attribution=a, installed=False, description=None,
                                   version=None,
                                   models=[info.IntentModel(name="m", attribution=a, installed=True,
                                                            description=None, version=None, languages=["en"])])],
        wake=[info.WakeProgram(name="jarvis-wake", attribution=a, installed=True, description=None, version=None,
                               models=[info.WakeModel(name="hey_jarvis", attribution=a, installed=True,
                                                      description="Hey Jarvis", version=None, languages=["en"],
                                                      phrase="Hey Jarvis")])],
        mic=[info.MicProgram(name="mic", attribution=a, installed=True, description=None, version=None,
                             mic_format=audio.AudioFormat(rate=16000, width=2, channels=1))],
        snd=[info.SndProgram(name="snd", attribution=a, installed=True, description=None, version=None,
                             snd_format=audio.AudioFormat(rate=22050, width=2, channels=1))],
        satellite=info.Satellite(name="kitchen", attribution=a, installed=True, description=None, version=None,
                                 area="Kitchen", has_vad=True, active_wake_words=["hey_jarvis"],
                                 max_active_wake_words=2, supports_trigger=True),
    )


def samples():
    ctx = {"conversation_id": "c-1", "nested": {"n": 1, "s": "ünïcode ✓"}}
    pcm = bytes(i % 251 for i in range(1_000_000))
    return [
        audio.AudioStart(rate=16000, width=2, channels=1, timestamp=0),
        audio.AudioChunk(rate=16000, width=2, channels=1, audio=pcm[:320], timestamp=10),
        audio.AudioChunk(rate=48000, width=4, channels=2, audio=pcm),
        audio.AudioStop(timestamp=20),
        info.Describe(),
        large_info(400),
        info.Info(),
        info.SelectProgram(name="jarvis-stt"),
        asr.Transcribe(name="tiny.en", language="en", context=ctx, vad_sensitivity=asr.VadSensitivity.AGGRESSIVE,
                       transcript_names=["pve", "agent1"], transcript_terms=["Proxmox"]),
        asr.Transcript(text="start VM one oh one", language="en", context=ctx),
        asr.TranscriptStart(language="en", context=ctx),
        asr.TranscriptChunk(text="start "),
        asr.TranscriptStop(),
        tts.Synthesize(text="Reboot media-server? Say confirm.",
                       voice=tts.SynthesizeVoice(name="en_US-joe-medium", speaker="0"),
                       text_format=tts.SynthesizeTextFormat.TEXT, context=ctx),
        tts.SynthesizeStart(voice=tts.SynthesizeVoice(language="en_US"), text_format="ssml", context=ctx),
        tts.SynthesizeChunk(text="Hello. "),
        tts.SynthesizeStop(),
        tts.SynthesizeStopped(),
        wake.Detect(names=["hey_jarvis"], context=ctx),
        wake.Detection(name="hey_jarvis", timestamp=1234, speaker="alice", context=ctx),
        wake.NotDetected(context=ctx),
        vad.VoiceStarted(timestamp=100),
        vad.VoiceStopped(timestamp=900),
        intent.Recognize(text="status of node pve", context=ctx),
        intent.Intent(name="NodeStatus", entities=[intent.Entity(name="node", value="pve"),
                                                   intent.Entity(name="vmid", value=101)],
                      text="pve is online", context=ctx),
        intent.NotRecognized(text="Sorry?", context=ctx),
        intent.IntentsStart(context=ctx),
        intent.IntentsStop(context=ctx),
        handle.Handled(text="pve is online.", context=ctx),
        handle.NotHandled(text="I can't do that.", context=ctx),
        handle.HandledStart(context=ctx),
        handle.HandledChunk(text="pve "),
        handle.HandledStop(),
        ping.Ping(text="are you there"),
        ping.Pong(text="are you there"),
        Error(text="server is busy", code="busy"),
        UserEvent(name="custom", data={"k": [1, 2, 3]}, context=ctx),
        snd.Played(),
        satellite.RunSatellite(),
        satellite.PauseSatellite(),
        satellite.SatelliteConnected(),
        satellite.SatelliteDisconnected(),
        satellite.StreamingStarted(),
        satellite.StreamingStopped(),
        pipeline.RunPipeline(start_stage=pipeline.PipelineStage.WAKE, end_stage=pipeline.PipelineStage.TTS,
                             wake_word_name="hey_jarvis", restart_on_end=True,
                             wake_word_names=["hey_jarvis", "okay_nabu"], announce_text="Backup finished"),
        timer.TimerStarted(id="t1", total_seconds=90, name="tea", start_hours=0, start_minutes=1,
                           start_seconds=30),
        timer.TimerUpdated(id="t1", is_active=False, total_seconds=45),
        timer.TimerCancelled(id="t1"),
        timer.TimerFinished(id="t1"),
    ]


async def client(port):
    sent = samples()
    covered = {type(s) for s in sent}
    missing = [c.__name__ for c in TYPED if c not in covered]
    assert not missing, f"no sample for {missing}"
    async with AsyncTcpClient("127.0.0.1", port) as conn:
        for sample in sent:
            await conn.write_event(sample.event())
        # An unknown event type must come back untouched.
        await conn.write_event(Event(type="x-future", data={"a": 1}, payload=b"\x00\x01"))
        for sample in sent:
            reply = await asyncio.wait_for(conn.read_event(), timeout=10)
            assert reply is not None, f"connection closed before {type(sample).__name__}"
            assert type(sample).is_type(reply.type), f"sent {sample.event().type}, got {reply.type}"
            back = type(sample).from_event(reply)
            assert back == sample, f"{type(sample).__name__}: sent {sample!r:.300} got {back!r:.300}"
        reply = await asyncio.wait_for(conn.read_event(), timeout=10)
        assert (reply.type, reply.data, reply.payload) == ("x-future", {"a": 1}, b"\x00\x01"), reply
    print(f"ok {len(sent) + 1} events round-tripped (wyoming {wyoming.__version__})", flush=True)


def main():
    if wyoming.__version__ != "1.10.2":
        sys.exit(f"expected wyoming 1.10.2, found {wyoming.__version__}")
    if sys.argv[1:2] == ["echo-server"]:
        asyncio.run(echo_server())
    elif sys.argv[1:2] == ["client"]:
        asyncio.run(client(int(sys.argv[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
