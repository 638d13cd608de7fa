//! One text-to-speech request routed over `[[tts.backends]]`, with failover.
//!
//! Without backends a [`RoutedTts`] is only the local [`TtsFlow`], as before. With them, the
//! request goes to the best backend; a remote one gets the client's events as they arrive and
//! its audio goes to the client as it comes. The client's events are kept (bounded by
//! `tts.max_text_chars`) until the request is over: a backend that fails before its first audio
//! has reached the client (no connection, an `error` event, garbage, no audio in time) is marked
//! down and the request is replayed to the next one. After the first audio a failure is an
//! `error` event: the client has heard part of the speech, and a second voice starting over would
//! be worse.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};
use wyoming::Event;
use wyoming::misc::Error as ErrorEvent;
use wyoming::tts::{Synthesize, SynthesizeStart, SynthesizeStop};

use super::TtsService;
use super::flow::TtsFlow;
use crate::stt::backends::{Backend, Backends, LOOP_CODE, RemoteFailure, TtsBackendConfig};

/// Events from a remote exchange in flight to the flow: backpressure reaches the backend.
const EVENTS_IN_FLIGHT: usize = 32;

/// A remote exchange: the client's events go in, the backend's audio comes out.
#[derive(Debug)]
struct Remote {
    index: usize,
    sender: mpsc::UnboundedSender<Event>,
    events: mpsc::Receiver<Result<Event, RemoteFailure>>,
    task: JoinHandle<()>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
enum Current {
    Local(Box<TtsFlow>),
    Remote(Remote),
    Done,
}

/// One text-to-speech request: the local flow, or a remote exchange with failover.
#[derive(Debug)]
pub struct RoutedTts {
    current: Current,
    backends: Option<Arc<Backends>>,
    queue: VecDeque<usize>,
    /// The client's events so far, for a replay.
    kept: Vec<Event>,
    kept_chars: usize,
    /// `synthesize-start` … (else one `synthesize`).
    streaming: bool,
    /// All the client's text is in.
    all_text: bool,
    /// Audio has gone to the client: no failover any more.
    audio_sent: bool,
    failures: Vec<String>,
}

impl RoutedTts {
    /// The local flow alone, as without backends.
    pub fn local(flow: TtsFlow) -> Self {
        Self {
            current: Current::Local(Box::new(flow)),
            backends: None,
            queue: VecDeque::new(),
            kept: Vec::new(),
            kept_chars: 0,
            streaming: false,
            all_text: false,
            audio_sent: false,
            failures: Vec::new(),
        }
    }

    /// A `synthesize` or `synthesize-start` routed over `backends`; returns it with the events
    /// to send at once.
    pub fn route(backends: Arc<Backends>, request: &Event) -> (Self, Vec<Event>) {
        let (voice, streaming, text) = match request {
            Event::Synthesize(s) => (s.voice.as_ref(), false, s.text.as_str()),
            Event::SynthesizeStart(s) => (s.voice.as_ref(), true, ""),
            _ => (None, false, ""),
        };
        let queue = backends
            .candidates_for(
                voice.and_then(|v| v.name.as_deref()),
                voice.and_then(|v| v.language.as_deref()),
            )
            .into();
        let mut routed = Self {
            current: Current::Done,
            backends: Some(backends),
            queue,
            kept: vec![request.clone()],
            kept_chars: text.chars().count(),
            streaming,
            all_text: !streaming,
            audio_sent: false,
            failures: Vec::new(),
        };
        if let Some(events) = routed.over_limit() {
            return (routed, events);
        }
        let events = routed.next_backend();
        (routed, events)
    }

    /// Whether the exchange is over.
    pub fn is_done(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_done(),
            Current::Remote(_) => false,
            Current::Done => true,
        }
    }

    /// Whether this is a streamed exchange still taking text.
    pub fn is_streaming(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_streaming(),
            Current::Remote(_) => self.streaming && !self.all_text,
            Current::Done => false,
        }
    }

    /// Whether audio is still to come (shutdown waits for it).
    pub fn is_busy(&self) -> bool {
        match &self.current {
            Current::Local(flow) => flow.is_busy(),
            Current::Remote(_) => self.all_text,
            Current::Done => false,
        }
    }

    /// `synthesize-chunk`.
    pub fn on_chunk(&mut self, event: &Event, text: &str) -> Vec<Event> {
        if self.backends.is_some() && !self.is_done() && !self.all_text {
            self.kept.push(event.clone());
            self.kept_chars += text.chars().count();
            if let Some(events) = self.over_limit() {
                return events;
            }
        }
        match &mut self.current {
            Current::Local(flow) => flow.on_chunk(text),
            Current::Remote(remote) => {
                let _ = remote.sender.send(event.clone());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// The compatibility `synthesize` inside a stream: the local flow ignores it; a remote that
    /// does not stream may need it.
    pub fn on_compat_synthesize(&mut self, request: &Synthesize) -> Vec<Event> {
        if self.backends.is_none() || self.is_done() {
            return Vec::new();
        }
        let event = Event::from(request.clone());
        self.kept.push(event.clone());
        if let Current::Remote(remote) = &mut self.current {
            let _ = remote.sender.send(event);
        }
        Vec::new()
    }

    /// `synthesize-stop`.
    pub fn on_stop(&mut self) -> Vec<Event> {
        if self.backends.is_some() && !self.is_done() && !self.all_text {
            self.kept.push(SynthesizeStop {}.into());
            self.all_text = true;
        }
        match &mut self.current {
            Current::Local(flow) => flow.on_stop(),
            Current::Remote(remote) => {
                let _ = remote.sender.send(SynthesizeStop {}.into());
                Vec::new()
            }
            Current::Done => Vec::new(),
        }
    }

    /// Audio as a backend produces it, with failover before the first audio. Pending forever
    /// when there is nothing to wait for.
    ///
    /// # Cancel safety
    /// Cancel safe: the local flow's output is, and a remote's events wait in its channel.
    pub async fn next_output(&mut self) -> Vec<Event> {
        loop {
            match &mut self.current {
                Current::Local(flow) => {
                    let events = flow.next_output().await;
                    if self.backends.is_some() && flow.is_done() {
                        self.current = Current::Done;
                    }
                    return events;
                }
                Current::Remote(remote) => {
                    let index = remote.index;
                    let next =
                        remote.events.recv().await.unwrap_or_else(|| {
                            Err(RemoteFailure::Failed("exchange stopped".into()))
                        });
                    match next {
                        Ok(event) => return self.pass(event),
                        Err(failure) => {
                            self.remote_failed(index, failure);
                            if self.audio_sent {
                                let text = format!(
                                    "text-to-speech backend failed after its first audio: {}",
                                    self.failures.join("; ")
                                );
                                return self.fail("tts-failed", text);
                            }
                            let events = self.next_backend();
                            if !events.is_empty() {
                                return events;
                            }
                        }
                    }
                }
                Current::Done => return std::future::pending().await,
            }
        }
    }

    /// An event from the remote, on its way to the client.
    fn pass(&mut self, event: Event) -> Vec<Event> {
        match &event {
            Event::AudioStart(_) | Event::AudioChunk(_) => self.audio_sent = true,
            Event::AudioStop(_) if !self.streaming => self.current = Current::Done,
            Event::SynthesizeStopped(_) => self.current = Current::Done,
            _ => {}
        }
        vec![event]
    }

    fn over_limit(&mut self) -> Option<Vec<Event>> {
        let limit = self
            .backends
            .as_ref()
            .map_or(usize::MAX, |b| b.max_audio_secs as usize);
        (self.kept_chars > limit).then(|| {
            let text = format!(
                "the text has {} characters, more than the limit of {limit} (tts.max_text_chars)",
                self.kept_chars
            );
            self.fail("text-too-long", text)
        })
    }

    fn backend(&self, index: usize) -> Option<&Backend> {
        self.backends.as_ref().and_then(|b| b.get(index))
    }

    fn remote_failed(&mut self, index: usize, failure: RemoteFailure) {
        if let Some(line) = self.backend(index).map(|backend| backend.record(failure)) {
            self.failures.push(line);
        }
    }

    /// Starts the next backend with every event the client sent so far.
    fn next_backend(&mut self) -> Vec<Event> {
        let Some(backends) = self.backends.clone() else {
            return Vec::new();
        };
        while let Some(index) = self.queue.pop_front() {
            let Some(backend) = backends.get(index) else {
                continue;
            };
            if backend.is_local() {
                let Some(service) = backends.local_tts.clone() else {
                    continue;
                };
                backend.routed();
                return self.start_local(service);
            }
            backend.routed();
            self.start_remote(&backends, index, &backend.connect_config());
            return Vec::new();
        }
        let text = if self.failures.is_empty() {
            "no text-to-speech backend is configured for this request".to_owned()
        } else {
            format!(
                "every text-to-speech backend failed: {}",
                self.failures.join("; ")
            )
        };
        self.fail("tts-failed", text)
    }

    fn start_local(&mut self, service: Arc<TtsService>) -> Vec<Event> {
        debug!("text-to-speech on the local voices");
        let mut events = Vec::new();
        let mut flow = None;
        for event in &self.kept {
            match (event, flow.as_mut()) {
                (Event::Synthesize(request), None) => {
                    let (f, out) = TtsFlow::single(Arc::clone(&service), request);
                    flow = Some(f);
                    events.extend(out);
                }
                (Event::SynthesizeStart(request), None) => {
                    let (f, out) = TtsFlow::stream(Arc::clone(&service), request);
                    flow = Some(f);
                    events.extend(out);
                }
                (Event::SynthesizeChunk(chunk), Some(f)) => events.extend(f.on_chunk(&chunk.text)),
                (Event::SynthesizeStop(_), Some(f)) => events.extend(f.on_stop()),
                _ => {}
            }
        }
        match flow {
            Some(flow) if !flow.is_done() => self.current = Current::Local(Box::new(flow)),
            _ => self.current = Current::Done,
        }
        events
    }

    fn start_remote(&mut self, backends: &Backends, index: usize, config: &TtsBackendConfig) {
        let (sender, receiver) = mpsc::unbounded_channel();
        for event in &self.kept {
            let event = match event {
                // The request carries this Jarvis in its hops (loop protection).
                Event::Synthesize(s) if !self.streaming => Synthesize {
                    context: Some(backends.with_hop(s.context.clone())),
                    ..s.clone()
                }
                .into(),
                Event::SynthesizeStart(s) => SynthesizeStart {
                    context: Some(backends.with_hop(s.context.clone())),
                    ..s.clone()
                }
                .into(),
                other => other.clone(),
            };
            let _ = sender.send(event);
        }
        debug!(backend = %config.label(), "text-to-speech on a remote backend");
        let (out, events) = mpsc::channel(EVENTS_IN_FLIGHT);
        let task = tokio::spawn(exchange(config.clone(), receiver, out, self.streaming));
        self.current = Current::Remote(Remote {
            index,
            sender,
            events,
            task,
        });
    }

    fn fail(&mut self, code: &str, text: String) -> Vec<Event> {
        info!(code, %text, "text-to-speech request refused");
        self.current = Current::Done;
        vec![ErrorEvent::new(code, text).into()]
    }
}

/// One exchange with a remote backend: forward what the channel brings, pass its audio events
/// back. Each event from the backend is due within `result_timeout` once all text has gone out.
async fn exchange(
    config: TtsBackendConfig,
    mut input: mpsc::UnboundedReceiver<Event>,
    out: mpsc::Sender<Result<Event, RemoteFailure>>,
    streaming: bool,
) {
    use RemoteFailure::Failed;
    let result = async {
        let client = crate::stt::backends::connect_with(&config, wyoming::Limits::default())
            .await
            .map_err(Failed)?;
        let (mut reader, mut writer) = client.into_split();
        let timeout = config.result_timeout();
        let mut all_text = !streaming;
        let mut open = true;
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                event = input.recv(), if open => {
                    let Some(event) = event else {
                        open = false;
                        continue;
                    };
                    all_text |= matches!(event, Event::SynthesizeStop(_));
                    match tokio::time::timeout(timeout, writer.write_event(event)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => return Err(Failed(format!("lost while sending text: {err}"))),
                        Err(_) => return Err(Failed("did not take the text in time".into())),
                    }
                    deadline = tokio::time::Instant::now() + timeout;
                }
                read = reader.read_event() => {
                    deadline = tokio::time::Instant::now() + timeout;
                    let event = match read {
                        Ok(Some(Event::Error(err))) => {
                            let code = err.code.unwrap_or_default();
                            let reason = format!("error {code}: {}", err.text);
                            return Err(if code == LOOP_CODE {
                                RemoteFailure::Loop(reason)
                            } else {
                                Failed(reason)
                            });
                        }
                        Ok(Some(event @ (Event::AudioStart(_) | Event::AudioChunk(_) | Event::AudioStop(_) | Event::SynthesizeStopped(_)))) => event,
                        Ok(Some(other)) => {
                            debug!(event = other.kind(), "ignored from a backend");
                            continue;
                        }
                        Ok(None) => return Err(Failed("closed the connection before the end of the speech".into())),
                        Err(err) => return Err(Failed(format!("bad frame: {err}"))),
                    };
                    let last = matches!(event, Event::SynthesizeStopped(_))
                        || (!streaming && matches!(event, Event::AudioStop(_)));
                    if out.send(Ok(event)).await.is_err() || last {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until(deadline), if all_text => {
                    return Err(Failed(format!(
                        "no audio within {} ms",
                        config.result_timeout_ms
                    )));
                }
            }
        }
    }
    .await;
    if let Err(failure) = result {
        let _ = out.send(Err(failure)).await;
    }
}
