//! Routing: which service a connection is for, decided by its first request event.
//!
//! Home Assistant opens one TCP connection per operation and starts it straight with the request,
//! never with `describe` or `select-program` (protocol document §3.4). Other clients may start STT
//! with a bare `audio-start`, which faster-whisper accepts too.

use wyoming::Event;

/// A Wyoming service that a connection can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Speech-to-text.
    Stt,
    /// Wake-word detection.
    Wake,
    /// Text-to-speech.
    Tts,
    /// Intent handling (HA's conversation agent) and recognition.
    Intent,
}

impl Route {
    /// The route a request event opens, or `None` for events that open nothing.
    pub fn of(event: &Event) -> Option<Self> {
        match event {
            Event::Transcribe(_) | Event::AudioStart(_) => Some(Self::Stt),
            Event::Detect(_) => Some(Self::Wake),
            Event::Synthesize(_) | Event::SynthesizeStart(_) => Some(Self::Tts),
            Event::Transcript(_) | Event::Recognize(_) | Event::Intent(_) => Some(Self::Intent),
            _ => None,
        }
    }

    /// Whether `event` continues a flow of this route (audio for STT, text for streamed TTS, ...).
    pub fn continues_with(self, event: &Event) -> bool {
        match self {
            Self::Stt => matches!(
                event,
                Event::AudioStart(_) | Event::AudioChunk(_) | Event::AudioStop(_)
            ),
            Self::Wake => matches!(
                event,
                Event::AudioStart(_) | Event::AudioChunk(_) | Event::AudioStop(_)
            ),
            Self::Tts => matches!(
                event,
                Event::SynthesizeChunk(_) | Event::SynthesizeStop(_) | Event::Synthesize(_)
            ),
            Self::Intent => false,
        }
    }

    /// Whether `request` (which opens this route) is followed by more events of its flow, as
    /// `transcribe` is by audio; `synthesize` and `transcript` are whole requests on their own.
    pub fn opens_flow(request: &Event) -> bool {
        matches!(
            request,
            Event::Transcribe(_)
                | Event::AudioStart(_)
                | Event::Detect(_)
                | Event::SynthesizeStart(_)
        )
    }

    /// Whether `event` is the client's last event of a flow of this route.
    pub fn ends_flow(self, event: &Event) -> bool {
        match self {
            Self::Stt | Self::Wake => matches!(event, Event::AudioStop(_)),
            Self::Tts => matches!(event, Event::SynthesizeStop(_)),
            Self::Intent => true,
        }
    }

    /// The service's name for people.
    pub fn service_name(self) -> &'static str {
        match self {
            Self::Stt => "speech-to-text",
            Self::Wake => "wake word detection",
            Self::Tts => "text-to-speech",
            Self::Intent => "intent handling",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wyoming::asr::{Transcribe, Transcript};
    use wyoming::audio::{AudioChunk, AudioFormat, AudioStart};
    use wyoming::info::Describe;
    use wyoming::intent::Recognize;
    use wyoming::tts::{Synthesize, SynthesizeChunk, SynthesizeStart};
    use wyoming::wake::Detect;

    #[test]
    fn first_events_route_as_home_assistant_drives_them() {
        let fmt = AudioFormat::HA_MIC;
        let cases: Vec<(Event, Option<Route>)> = vec![
            (Transcribe::default().into(), Some(Route::Stt)),
            (AudioStart::new(fmt, None).into(), Some(Route::Stt)),
            (Detect::default().into(), Some(Route::Wake)),
            (Synthesize::default().into(), Some(Route::Tts)),
            (SynthesizeStart::default().into(), Some(Route::Tts)),
            (Transcript::default().into(), Some(Route::Intent)),
            (Recognize::default().into(), Some(Route::Intent)),
            (Describe {}.into(), None),
            (AudioChunk::new(fmt, vec![0u8; 4], None).into(), None),
            (SynthesizeChunk::default().into(), None),
        ];
        for (event, route) in cases {
            assert_eq!(Route::of(&event), route, "{}", event.kind());
        }
    }

    #[test]
    fn flows_continue_only_with_their_own_events() {
        let chunk: Event = AudioChunk::new(AudioFormat::HA_MIC, vec![0u8; 4], None).into();
        assert!(Route::Stt.continues_with(&chunk));
        assert!(Route::Wake.continues_with(&chunk));
        assert!(!Route::Tts.continues_with(&chunk));
        assert!(Route::Tts.continues_with(&SynthesizeChunk::default().into()));
        assert!(!Route::Intent.continues_with(&chunk));
    }

    #[test]
    fn flows_open_and_end_where_the_protocol_says() {
        assert!(Route::opens_flow(&Transcribe::default().into()));
        assert!(Route::opens_flow(&SynthesizeStart::default().into()));
        assert!(!Route::opens_flow(&Synthesize::default().into()));
        assert!(!Route::opens_flow(&Transcript::default().into()));
        let stop: Event = wyoming::audio::AudioStop::default().into();
        assert!(Route::Stt.ends_flow(&stop) && Route::Wake.ends_flow(&stop));
        assert!(!Route::Tts.ends_flow(&stop));
        assert!(Route::Tts.ends_flow(&wyoming::tts::SynthesizeStop {}.into()));
    }
}
