//! Speech-to-text over Wyoming with the real whisper tiny.en and Silero VAD models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use wyoming::asr::Transcribe;
use wyoming::audio::{AudioChunk, AudioFormat, AudioStart, AudioStop};
use wyoming::info::Describe;
use wyoming::{Client, Event};

/// Decoding is CPU-bound and whisper's threads spin while they wait for each other, so tests that
/// decode at the same time on a 2-core machine slow each other down many times over. They take
/// turns instead.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

fn sample(path: &str) -> PathBuf {
    models_dir().join(path)
}

fn jfk() -> PathBuf {
    sample("whisper/samples/jfk.wav")
}

fn kitchen() -> PathBuf {
    sample("wakeword/samples/turn_on_kitchen_lights_joe_16k.wav")
}

/// 16-bit mono samples of a WAV file.
fn read_wav(path: &PathBuf) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().channels, 1);
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<i16>().map(Result::unwrap).collect())
}

fn pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// [`stt_config`] with our endpointing off: the client's `audio-stop` ends the audio.
fn stt_without_vad() -> jarvis::config::Config {
    let mut config = stt_config();
    config.stt.vad.enabled = false;
    config
}

/// Starts a transcription as HA does: `transcribe`, then `audio-start` in `format`.
async fn start(client: &mut Client, format: AudioFormat) {
    client.send(Transcribe::default()).await.unwrap();
    client.send(AudioStart::new(format, None)).await.unwrap();
}

/// Sends `pcm` in 10 ms chunks of `format`.
async fn stream(client: &mut Client, format: AudioFormat, pcm: &[u8]) {
    let step = (format.rate / 100 * format.width * format.channels) as usize;
    for chunk in pcm.chunks(step) {
        client
            .send(AudioChunk::new(format, chunk.to_vec(), None))
            .await
            .unwrap();
    }
}

/// Reads until a transcript or error (and, after a transcript, its `transcript-stop`); returns
/// it with the types of everything read.
async fn until_result(client: &mut Client) -> (Event, Vec<String>) {
    until_result_within(client, LIMIT).await
}

/// [`until_result`], waiting up to `limit` for each event: a request queued behind others on
/// one worker waits for their decodes too.
async fn until_result_within(client: &mut Client, limit: Duration) -> (Event, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let event = recv_within(client, limit)
            .await
            .expect("server closed before the transcript");
        seen.push(event.kind().to_owned());
        match event {
            Event::Transcript(_) => {
                let stop = recv_within(client, limit).await.expect("transcript-stop");
                assert!(matches!(stop, Event::TranscriptStop(_)), "{stop:?}");
                return (event, seen);
            }
            Event::Error(_) => return (event, seen),
            _ => {}
        }
    }
}

fn text_of(event: &Event) -> String {
    match event {
        Event::Transcript(t) => t.text.to_lowercase(),
        other => panic!("expected a transcript, got {other:?}"),
    }
}

#[tokio::test]
async fn jfk_through_the_reference_python_client_as_home_assistant_sends_it() {
    let _turn = one_at_a_time().await;
    // JFK pauses for over a second between phrases; an endpointer (ours or HA's 0.7 s default)
    // rightly ends the command there. Here HA's stream decides the end, as with
    // `requires_external_vad: true`.
    let config = stt_without_vad();
    let app = spawn_app(config).await;
    let port = app.wyoming_addr.port().to_string();
    let result = run_python_peer("stt_client.py", &[&port, jfk().to_str().unwrap()]).await;
    let text = result["text"]
        .as_str()
        .expect("a transcript")
        .to_lowercase();
    assert!(
        text.contains("ask not what your country can do for you"),
        "{result}"
    );
    assert_eq!(result["language"], "en");
    // Streaming events come first, as the protocol orders them.
    let events: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"transcript-start"), "{events:?}");
    assert!(events.contains(&"transcript-chunk"), "{events:?}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn info_advertises_the_installed_model_and_our_own_endpointing() {
    let app = spawn_app(stt_config()).await;
    let mut client = client(app.wyoming_addr).await;
    let info = client.describe().await.unwrap();
    let asr = info.asr.first().expect("an asr program");
    assert!(asr.installed);
    assert!(
        !asr.requires_external_vad,
        "we detect the end of speech ourselves"
    );
    assert!(asr.supports_transcript_streaming);
    let model = asr.models.first().unwrap();
    assert_eq!(model.name, "tiny.en");
    assert_eq!(model.languages, vec!["en".to_owned()]);
    assert!(model.installed && !model.attribution.name.is_empty());
    app.shutdown.cancel();
}

/// Linear interpolation to `rate` and duplication to stereo: a crude converter on purpose, so
/// the server's own resampler is what has to cope.
fn to_stereo_at(rate_in: u32, samples: &[i16], rate: u32) -> Vec<u8> {
    let n = (samples.len() as u64 * u64::from(rate) / u64::from(rate_in)) as usize;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        let pos = i as f64 * f64::from(rate_in) / f64::from(rate);
        let a = samples[(pos as usize).min(samples.len() - 1)];
        let b = samples[(pos as usize + 1).min(samples.len() - 1)];
        let v = (f64::from(a) + (f64::from(b) - f64::from(a)) * pos.fract()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn audio_in_other_formats_is_resampled() {
    let _turn = one_at_a_time().await;
    let config = stt_without_vad();
    let app = spawn_app(config).await;
    let (rate, samples) = read_wav(&jfk());
    let format = AudioFormat {
        rate: 44_100,
        width: 2,
        channels: 2,
    };
    let mut client = client(app.wyoming_addr).await;
    start(&mut client, format).await;
    stream(&mut client, format, &to_stereo_at(rate, &samples, 44_100)).await;
    client.send(AudioStop::default()).await.unwrap();
    let (event, _) = until_result(&mut client).await;
    assert!(
        text_of(&event).contains("ask not what your country can do for you"),
        "{event:?}"
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn the_transcript_comes_when_speech_ends_without_waiting_for_audio_stop() {
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let (_, mut samples) = read_wav(&kitchen());
    // Two seconds of quiet room noise after the command, and no audio-stop.
    samples.extend(noise(2.0));
    let mut client = client(app.wyoming_addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    stream(&mut client, AudioFormat::HA_MIC, &pcm(&samples)).await;
    let (event, _) = until_result(&mut client).await;
    let text = text_of(&event);
    assert!(text.contains("kitchen"), "{text}");
    // The socket stays open: later audio and audio-stop are read and dropped, and the
    // connection still answers.
    stream(&mut client, AudioFormat::HA_MIC, &pcm(&[0; 3200])).await;
    client.send(AudioStop::default()).await.unwrap();
    client.send(Describe {}).await.unwrap();
    assert!(matches!(recv(&mut client).await, Some(Event::Info(_))));
    app.shutdown.cancel();
}

/// Low room noise, so the silence is not digital zero.
fn noise(seconds: f32) -> Vec<i16> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| ((i * 7919) % 61) as i16 - 30)
        .collect()
}

#[tokio::test]
async fn a_pause_mid_sentence_does_not_end_the_command() {
    let _turn = one_at_a_time().await;
    // "And so ... my fellow Americans": "so" needs a word after it, so the short silence is not
    // the end (and the audio is sent at once, so no pause in it ends the request anyway).
    let (_, jfk) = read_wav(&jfk());
    let split = (0.65 * 16_000.0) as usize;
    let mut audio = jfk[..split].to_vec();
    audio.extend(noise(0.5));
    audio.extend(&jfk[split..(2.2 * 16_000.0) as usize]);
    audio.extend(noise(1.5));
    let app = spawn_app(stt_config()).await;
    let mut client = client(app.wyoming_addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    stream(&mut client, AudioFormat::HA_MIC, &pcm(&audio)).await;
    let (event, _) = until_result(&mut client).await;
    assert!(text_of(&event).contains("fellow"), "{event:?}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn empty_audio_gives_an_empty_transcript() {
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let mut client = client(app.wyoming_addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    client.send(AudioStop::default()).await.unwrap();
    let (event, _) = until_result(&mut client).await;
    assert_eq!(text_of(&event), "");
    app.shutdown.cancel();
}

#[tokio::test]
async fn audio_chunk_before_audio_start_is_an_error() {
    let app = spawn_app(stt_config()).await;
    let mut client = client(app.wyoming_addr).await;
    client.send(Transcribe::default()).await.unwrap();
    client
        .send(AudioChunk::new(AudioFormat::HA_MIC, vec![0u8; 320], None))
        .await
        .unwrap();
    let text = expect_error(&mut client, "unexpected-event").await;
    assert!(text.contains("audio-start"), "{text}");
    assert_still_served(&mut client).await;
    app.shutdown.cancel();
}

#[tokio::test]
async fn impossible_formats_are_errors() {
    let app = spawn_app(stt_config()).await;
    for (rate, width, channels, field) in [
        (0, 2, 1, "rate"),
        (16000, 3, 1, "width"),
        (16000, 2, 0, "channels"),
    ] {
        let mut client = client(app.wyoming_addr).await;
        client.send(Transcribe::default()).await.unwrap();
        client
            .send(AudioStart::new(
                AudioFormat {
                    rate,
                    width,
                    channels,
                },
                None,
            ))
            .await
            .unwrap();
        let text = expect_error(&mut client, "bad-audio-format").await;
        assert!(text.contains(field), "{text}");
        assert_still_served(&mut client).await;
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn audio_over_the_limit_is_an_error() {
    let mut config = stt_config();
    config.stt.max_audio_secs = 2;
    let app = spawn_app(config).await;
    let mut client = client(app.wyoming_addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    stream(&mut client, AudioFormat::HA_MIC, &vec![0u8; 3 * 32_000]).await;
    client.send(AudioStop::default()).await.unwrap();
    let text = expect_error(&mut client, "audio-too-long").await;
    assert!(text.contains("2 s"), "{text}");
    // The rest of the audio was dropped without more errors; the connection still answers.
    assert_still_served(&mut client).await;
    app.shutdown.cancel();
}

/// Sends `seconds` of JFK (repeated) with endpointing off, then `audio-stop`.
async fn long_request(addr: std::net::SocketAddr, seconds: usize) -> Client {
    let (_, samples) = read_wav(&jfk());
    let audio: Vec<i16> = samples
        .iter()
        .copied()
        .cycle()
        .take(seconds * 16_000)
        .collect();
    let mut client = client(addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    stream(&mut client, AudioFormat::HA_MIC, &pcm(&audio)).await;
    client.send(AudioStop::default()).await.unwrap();
    client
}

fn one_worker() -> jarvis::config::Config {
    let mut config = stt_without_vad();
    config.stt.workers = 1;
    config.stt.queue = 1;
    config
}

#[tokio::test]
async fn a_client_that_vanishes_mid_decode_has_its_work_abandoned() {
    let _turn = one_at_a_time().await;
    let app = spawn_app(one_worker()).await;
    let stats = &app.services.stt.as_ref().unwrap().engine().stats();
    let client = long_request(app.wyoming_addr, 25).await;
    drop(client);
    tokio::time::timeout(LIMIT, async {
        while stats.cancelled.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the decode is cancelled");
    assert_eq!(stats.completed.load(Ordering::Relaxed), 0);
    // The worker is free again for the next client.
    let mut next = long_request(app.wyoming_addr, 3).await;
    let (event, _) = until_result(&mut next).await;
    assert!(text_of(&event).contains("americans"), "{event:?}");
    app.shutdown.cancel();
}

/// How `SttFlow::speculate` replaces its own stale speculation: a speculation that waits only
/// for an idle worker is refused while a decode holds it (and a cancelled decode holds it until
/// it notices, between two operations), so the replacement is queued behind the cancelled
/// decode and runs as soon as that stops.
#[tokio::test]
async fn a_job_queued_behind_a_cancelled_decode_runs_when_it_stops() {
    use jarvis::stt::SttError;
    use jarvis::stt::audio::to_whisper;
    use jarvis::stt::whisper::{CancelFlag, DecodeRequest};

    let _turn = one_at_a_time().await;
    let app = spawn_app(one_worker()).await;
    let engine = app.services.stt.as_ref().unwrap().engine();
    let (_, samples) = read_wav(&jfk());
    let as_f32 = |s: &[i16]| -> std::sync::Arc<[f32]> {
        to_whisper(AudioFormat::HA_MIC, &pcm(s)).unwrap().into()
    };
    let window: Vec<i16> = samples.iter().copied().cycle().take(28 * 16_000).collect();
    let stale = CancelFlag::default();
    let first = engine
        .submit(as_f32(&window), DecodeRequest::default(), stale.clone())
        .unwrap();
    // Well inside the encoder of 28 s (over a second on two cores).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = engine.submit_if_idle(
        as_f32(&samples),
        DecodeRequest::default(),
        CancelFlag::default(),
    );
    assert!(matches!(refused, Err(SttError::Busy)), "{refused:?}");
    stale.cancel();
    let queued = engine
        .submit(
            as_f32(&samples),
            DecodeRequest::default(),
            CancelFlag::default(),
        )
        .unwrap();
    let text = tokio::time::timeout(LIMIT, queued)
        .await
        .expect("the queued job runs")
        .unwrap()
        .unwrap()
        .text;
    assert!(text.to_lowercase().contains("americans"), "{text}");
    assert!(matches!(first.await.unwrap(), Err(SttError::Cancelled)));
    let stats = engine.stats();
    assert_eq!(stats.cancelled.load(Ordering::Relaxed), 1);
    assert_eq!(stats.completed.load(Ordering::Relaxed), 1);
    app.shutdown.cancel();
}

#[tokio::test]
async fn requests_beyond_the_queue_get_a_busy_error() {
    let _turn = one_at_a_time().await;
    let app = spawn_app(one_worker()).await;
    let addr = app.wyoming_addr;
    // One decoding, one queued, the third refused. Sent at once, each is decoded whole (a few
    // seconds for 10 s of audio), long after all three have arrived. The queued one's
    // transcript comes after both decodes: on two cores shared with other work (a bench beside
    // the tests) that took more than `LIMIT`, so it may wait for three.
    let requests = (0..3).map(|_| {
        tokio::spawn(async move {
            let mut client = long_request(addr, 10).await;
            until_result_within(&mut client, 3 * LIMIT).await.0
        })
    });
    let results = futures_util::future::join_all(requests).await;
    let busy = results
        .iter()
        .filter(
            |r| matches!(r.as_ref().unwrap(), Event::Error(e) if e.code.as_deref() == Some("busy")),
        )
        .count();
    let transcripts = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Event::Transcript(_)))
        .count();
    assert!(busy >= 1, "{results:?}");
    assert_eq!(busy + transcripts, 3, "{results:?}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn the_requested_model_and_language_are_honoured_or_refused_clearly() {
    let app = spawn_app(stt_config()).await;
    for (transcribe, code) in [
        (
            Transcribe {
                name: Some("large-v9".into()),
                ..Default::default()
            },
            "unknown-model",
        ),
        (
            Transcribe {
                language: Some("klingon".into()),
                ..Default::default()
            },
            "unknown-language",
        ),
    ] {
        let mut client = client(app.wyoming_addr).await;
        client.send(transcribe).await.unwrap();
        client
            .send(AudioStart::new(AudioFormat::HA_MIC, None))
            .await
            .unwrap();
        stream(&mut client, AudioFormat::HA_MIC, &pcm(&noise(0.5))).await;
        client.send(AudioStop::default()).await.unwrap();
        let text = expect_error(&mut client, code).await;
        assert!(
            text.contains("large-v9") || text.contains("klingon"),
            "{text}"
        );
    }
    // The installed model by name works.
    let _turn = one_at_a_time().await;
    let mut client = client(app.wyoming_addr).await;
    client
        .send(Transcribe {
            name: Some("tiny.en".into()),
            language: Some("en".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .send(AudioStart::new(AudioFormat::HA_MIC, None))
        .await
        .unwrap();
    let (_, kitchen) = read_wav(&kitchen());
    stream(&mut client, AudioFormat::HA_MIC, &pcm(&kitchen)).await;
    client.send(AudioStop::default()).await.unwrap();
    let (event, _) = until_result(&mut client).await;
    assert!(text_of(&event).contains("kitchen"), "{event:?}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn jfk_sent_faster_than_real_time_is_transcribed_whole() {
    // JFK pauses for over a second after "And so my fellow Americans": a live stream would end
    // there, but sent at once the rest of the speech has already arrived, and every word of it
    // must be in the transcript, once.
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let (_, samples) = read_wav(&jfk());
    let text = transcribe_at_once(app.wyoming_addr, &samples, true)
        .await
        .to_lowercase();
    assert_eq!(text.matches("fellow americ").count(), 1, "{text}");
    assert!(
        text.contains("ask not what your country can do for you")
            && text.contains("what you can do for your country"),
        "words lost: {text}"
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn jfk_sent_at_once_without_audio_stop_is_transcribed_whole() {
    // No audio-stop: once the audio stops arriving, endpointing judges all of it and ends at
    // the trailing silence, not at the first pause.
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let (_, mut samples) = read_wav(&jfk());
    samples.extend(noise(1.5));
    let text = transcribe_at_once(app.wyoming_addr, &samples, false)
        .await
        .to_lowercase();
    assert!(
        text.contains("and so my fellow americans")
            && text.contains("what you can do for your country"),
        "words lost: {text}"
    );
    app.shutdown.cancel();
}

/// Streams `samples` (16 kHz) as a live microphone does, 20 ms a chunk at the pace of speech,
/// then room noise until the server answers (at most `LIMIT`); returns the answer and how long
/// after the end of `samples` it came (negative: before the end).
async fn live(addr: std::net::SocketAddr, samples: Vec<i16>) -> (Event, f64) {
    let mut client = client(addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    let (mut reader, mut writer) = client.into_split();
    let speech_secs = samples.len() as f64 / 16_000.0;
    let began = tokio::time::Instant::now();
    let sender = tokio::spawn(async move {
        let mut audio = samples;
        audio.extend(noise(LIMIT.as_secs_f32()));
        for (i, chunk) in audio.chunks(320).enumerate() {
            tokio::time::sleep_until(began + Duration::from_millis(20 * (i as u64 + 1))).await;
            let chunk = AudioChunk::new(AudioFormat::HA_MIC, pcm(chunk), None);
            if writer.write_event(chunk).await.is_err() {
                return;
            }
        }
    });
    let answer = loop {
        let event = tokio::time::timeout(LIMIT, reader.read_event())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("server closed before the transcript");
        if matches!(event, Event::Transcript(_) | Event::Error(_)) {
            break event;
        }
    };
    let after = began.elapsed().as_secs_f64() - speech_secs;
    sender.abort();
    (answer, after)
}

#[tokio::test]
async fn jfk_live_ends_at_its_long_pause_with_every_word_before_it() {
    // Live, the 1.3 s pause after "And so my fellow Americans" is the end, as in HA.
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let (_, samples) = read_wav(&jfk());
    let (event, _) = live(app.wyoming_addr, samples).await;
    let text = text_of(&event);
    assert!(text.contains("and so my fellow americans"), "{text}");
    assert_eq!(text.matches("fellow americ").count(), 1, "{text}");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_live_command_with_a_pause_inside_is_heard_whole() {
    // "Turn on the ... kitchen lights": after "the" the words are not a whole request, so a
    // pause of 0.6 s, or of a whole second, does not end it.
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    // Each part spoken on its own, as someone who stops to think says it.
    let tts = tokio::task::spawn_blocking(|| jarvis::tts::TtsService::load(&steady_tts_config()))
        .await
        .unwrap()
        .unwrap();
    let speak = |text| {
        let clip = common::wake_clips::piper(&tts, text);
        common::wake_clips::resample(clip.rate, &clip.samples)
    };
    let (first, second) = (speak("Turn on the"), speak("kitchen lights."));
    for pause in [0.6, 1.0] {
        let mut audio = first.clone();
        audio.extend(noise(pause));
        audio.extend(&second);
        let (event, after) = live(app.wyoming_addr, audio).await;
        let text = text_of(&event);
        // What matters is that the words after the pause are there; tiny.en hears some of
        // Piper's "turn on the" as "on that".
        assert!(
            text.contains("on th") && text.contains("kitchen light"),
            "pause of {pause} s: {text}"
        );
        assert!(
            after > 0.0,
            "ended {after:.2} s before the speech did: {text}"
        );
    }
    app.shutdown.cancel();
}

/// Decodes 16 kHz `samples` with the engine directly, with or without a grammar.
async fn decode_with(
    service: &jarvis::stt::SttService,
    samples: &[i16],
    grammar: Option<std::sync::Arc<jarvis::stt::grammar::SpeechGrammar>>,
    prompt: &str,
) -> String {
    let samples: std::sync::Arc<[f32]> = common::wake_clips::to_f32(samples).into();
    let request = jarvis::stt::whisper::DecodeRequest {
        prompt: prompt.into(),
        grammar,
        ..Default::default()
    };
    let receiver = service
        .engine()
        .submit(samples, request, Default::default())
        .unwrap();
    receiver.await.unwrap().unwrap().text
}

#[tokio::test]
async fn guided_decoding_writes_the_clusters_names_and_leaves_other_speech_as_said() {
    use jarvis::stt::grammar::{GrammarBuilder, Part};
    let _turn = one_at_a_time().await;
    let config = stt_config();
    let service = tokio::task::spawn_blocking(move || jarvis::stt::SttService::load(&config))
        .await
        .unwrap()
        .unwrap();
    let mut builder = GrammarBuilder::new();
    builder.sentence(&[
        Part::Word("list"),
        Part::Word("all"),
        Part::Word("containers"),
    ]);
    for words in [
        &["what", "is", "the", "status", "of"][..],
        &["start"][..],
        &["tell", "me", "about"][..],
    ] {
        let mut parts: Vec<Part<'_>> = words.iter().map(|w| Part::Word(w)).collect();
        parts.push(Part::Slot("target"));
        builder.sentence(&parts);
    }
    for value in [
        "pve",
        "p v e",
        "node pve",
        "node p v e",
        "agent1",
        "media-server",
    ] {
        builder.value("target", value);
    }
    let grammar = std::sync::Arc::new(builder.build());
    // The names are in the prompt too, as the cluster's names always are.
    let prompt = "pve, agent1, media-server.";
    for voice in ["en-us", "en-gb"] {
        let speak = |text: &str| {
            let clip = common::wake_clips::espeak(text, voice, 160);
            common::wake_clips::resample(clip.rate, &clip.samples)
        };
        // Free, whisper hears "status unknown, Bve" or "status on node BBE".
        let command = speak("What is the status of node pve?");
        let free = decode_with(&service, &command, None, prompt).await;
        let guided = decode_with(&service, &command, Some(grammar.clone()), prompt).await;
        assert!(
            guided.to_lowercase().contains("status of node pve"),
            "{voice}: free {free:?}, guided {guided:?}"
        );
        // Misheard from its first word on ("Listor containers" in some voices): guided too,
        // since whisper finds the command's words about as likely as its own.
        let command = speak("List all containers.");
        let free = decode_with(&service, &command, None, prompt).await;
        let guided = decode_with(&service, &command, Some(grammar.clone()), prompt).await;
        eprintln!("{voice}: free {free:?}, guided {guided:?}");
        assert!(
            guided.to_lowercase().contains("list all containers"),
            "{voice}: free {free:?}, guided {guided:?}"
        );
        // Other speech stays as said, even where the grammar has a sentence that begins the
        // same way ("tell me about <name>").
        for text in [
            "Turn on the kitchen lights.",
            "What's the weather like tomorrow?",
            "Tell me a joke.",
        ] {
            let audio = speak(text);
            let free = decode_with(&service, &audio, None, prompt).await;
            let guided = decode_with(&service, &audio, Some(grammar.clone()), prompt).await;
            assert_eq!(guided, free, "{voice}: the grammar bent {text:?}");
        }
    }
}

/// Jarvis with speech-to-text and the fake homelab cluster, its inventory already fetched (as it
/// is once anyone has asked anything, or MQTT has polled).
async fn with_cluster() -> (jarvis::app::App, common::fake_proxmox::FakeProxmox) {
    with_cluster_and(stt_config()).await
}

/// [`with_cluster`] with other settings.
async fn with_cluster_and(
    mut config: jarvis::config::Config,
) -> (jarvis::app::App, common::fake_proxmox::FakeProxmox) {
    let fake = common::fake_proxmox::FakeProxmox::homelab().await;
    config.proxmox = fake.config();
    let app = spawn_app(config).await;
    let reply = app
        .services
        .brain
        .command(jarvis::brain::Command {
            text: "How is the cluster doing?".into(),
            channel: jarvis::brain::Channel::Http,
            client: "test".into(),
            conversation: None,
            approval: None,
        })
        .await;
    assert!(!reply.reply.is_empty());
    // The speech grammar is built in the background once the inventory is there.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while app.services.brain.last_speech_grammar().is_none() {
        assert!(
            std::time::Instant::now() < until,
            "no speech grammar within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (app, fake)
}

/// What Jarvis transcribes of `samples` sent at once, then `audio-stop` if `stop`.
/// Word-level edit distance (substitutions, insertions, deletions) between two sentences,
/// compared in lower case without punctuation (a hyphen inside a name stays).
fn word_edits(heard: &str, said: &str) -> usize {
    let words = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (heard, said) = (words(heard), words(said));
    let mut row: Vec<usize> = (0..=said.len()).collect();
    for (i, h) in heard.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, s) in said.iter().enumerate() {
            let substitution = diagonal + usize::from(h != s);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[said.len()]
}

#[test]
fn word_edits_count_words_not_letters_or_punctuation() {
    assert_eq!(
        word_edits("How full is local-lvm?", "how full is local-lvm"),
        0
    );
    assert_eq!(
        word_edits(
            "What is the status of node, pve?",
            "What is the status of node pve?"
        ),
        0
    );
    assert_eq!(
        word_edits("Haifole is local-lvm.", "How full is local-lvm?"),
        2
    );
    assert_eq!(
        word_edits("Tell me about agent1.", "How full is local-lvm?"),
        4
    );
    assert_eq!(word_edits("", "Start media-server."), 2);
}

async fn transcribe_at_once(addr: std::net::SocketAddr, samples: &[i16], stop: bool) -> String {
    let mut client = client(addr).await;
    start(&mut client, AudioFormat::HA_MIC).await;
    stream(&mut client, AudioFormat::HA_MIC, &pcm(samples)).await;
    if stop {
        client.send(AudioStop::default()).await.unwrap();
    }
    let (event, _) = until_result(&mut client).await;
    match event {
        Event::Transcript(t) => t.text,
        other => panic!("expected a transcript, got {other:?}"),
    }
}

#[tokio::test]
async fn names_that_exist_only_in_the_cluster_come_out_as_the_cluster_writes_them() {
    let _turn = one_at_a_time().await;
    let (app, _fake) = with_cluster().await;
    let speak = |text: &str, voice: &str| {
        let clip = common::wake_clips::espeak(text, voice, 160);
        common::wake_clips::resample(clip.rate, &clip.samples)
    };
    for voice in ["en-us", "en-gb"] {
        for (said, written) in [
            (
                "What is the status of node pve?",
                "What is the status of node pve?",
            ),
            (
                "What is the status of node P V E?",
                "What is the status of node pve?",
            ),
            ("Start media server.", "Start media-server."),
            ("How full is local L V M?", "How full is local-lvm?"),
        ] {
            let text = transcribe_at_once(app.wyoming_addr, &speak(said, voice), true).await;
            // The words around the name are whisper's to hear: tiny.en hears espeak's "how
            // full" as one word ("Haifole") with or without the cluster, and commas come and
            // go. At most two words of the sentence may differ; a sentence the grammar bent
            // into another command differs in more.
            let edits = word_edits(&text, written);
            assert!(
                edits <= 2,
                "{voice}: {said:?} heard as {text:?} ({edits} word edits)"
            );
            let name = written
                .split(' ')
                .next_back()
                .unwrap()
                .trim_end_matches(['.', '?']);
            assert!(
                text.contains(name),
                "{voice}: {text:?} spells {name} otherwise"
            );
        }
        // Outside the homelab, the grammar and the names leave the words as said.
        let text = transcribe_at_once(
            app.wyoming_addr,
            &speak("Turn on the kitchen lights.", voice),
            true,
        )
        .await;
        assert_eq!(
            text.to_lowercase(),
            "turn on the kitchen lights.",
            "{voice}"
        );
    }
    app.shutdown.cancel();
}

#[test]
fn the_sentence_silence_outlasts_a_sentences_comma() {
    // "Good morning," is a whole sentence, so the sentence silence may end the request there.
    // espeak-ng pauses ~200 ms at the comma, as people do. With one short silence of 150 ms for
    // commands and sentences alike, and a decode fast enough to be ready within the pause, "how
    // are you?" was lost in one real-time WER bench run of two. Silero, fed the clip as a
    // client sends it, must not report the sentence silence (`Vad::Lull`) in a pause that
    // speech then resumes from. (The brain judges "Good morning" a sentence, not a command:
    // `jarvis::brain::listen`'s tests.)
    use jarvis::stt::endpoint::{EndpointConfig, Endpointer, Vad, VadPool};
    let vad = jarvis::config::Config::default().stt.vad;
    let pool = std::sync::Arc::new(VadPool::load(&common::models_dir().join(&vad.model)).unwrap());
    let config = EndpointConfig::from(&vad);
    // At 150 words a minute these voices pause at the comma (faster, Silero hears none).
    for (voice, wpm) in [("en-us+f3", 150), ("en-us", 150)] {
        let clip = common::wake_clips::espeak_command("Good morning, how are you?", voice, wpm);
        let samples = common::wake_clips::to_f32(&clip);
        let mut endpointer = Endpointer::new(std::sync::Arc::clone(&pool), config).unwrap();
        let mut events = Vec::new();
        for end in (1024..=samples.len()).step_by(1024) {
            events.extend(endpointer.update(&samples[..end]).unwrap());
        }
        let resumed = events.iter().rposition(|e| matches!(e, Vad::Resume));
        let paused = events.iter().position(|e| matches!(e, Vad::Pause(_)));
        assert!(
            resumed.is_some() && paused.is_some(),
            "{voice} {wpm}: no pause at the comma: {events:?}"
        );
        assert!(
            !events[..resumed.unwrap()].contains(&Vad::Lull),
            "{voice} {wpm}: the sentence silence ended the sentence at its comma: {events:?}"
        );
    }
}

#[test]
fn silero_fed_chunk_by_chunk_hears_what_it_hears_in_one_pass() {
    // The endpointer feeds Silero only each chunk's new windows and lets its LSTM state go on
    // from the last chunk's (`detect_speech_on`). The probabilities must be those of one pass
    // over the whole stream, bit for bit: else endpointing would depend on how the client cut
    // its audio. And a context taken back from the pool must start afresh.
    use whisper_rs::{WhisperVadContext, WhisperVadContextParams};
    const WINDOW: usize = jarvis::stt::endpoint::WINDOW;
    let vad = jarvis::config::Config::default().stt.vad;
    let path = common::models_dir().join(&vad.model);
    let mut params = WhisperVadContextParams::new();
    params.set_n_threads(1);
    let mut context = WhisperVadContext::new(path.to_str().unwrap(), params).unwrap();
    let clip = common::wake_clips::espeak_command("Good morning, how are you?", "en-us", 150);
    let mut samples = common::wake_clips::to_f32(&clip);
    samples.truncate(samples.len() / WINDOW * WINDOW);
    context.detect_speech(&samples).unwrap();
    let whole = context.probabilities().to_vec();
    assert_eq!(whole.len(), samples.len() / WINDOW);
    assert!(
        whole.iter().any(|p| *p > 0.9) && whole.iter().any(|p| *p < 0.1),
        "no speech and silence in {whole:?}"
    );
    // Chunks of two windows, as a client's 1024-sample chunks arrive, and uneven ones.
    for sizes in [&[2][..], &[1, 3, 5, 2]] {
        let mut streamed = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < samples.len() {
            let end = (at + sizes[i % sizes.len()] * WINDOW).min(samples.len());
            if at == 0 {
                context.detect_speech(&samples[..end]).unwrap();
            } else {
                context.detect_speech_on(&samples[at..end]).unwrap();
            }
            streamed.extend_from_slice(context.probabilities());
            (at, i) = (end, i + 1);
        }
        let same = whole
            .iter()
            .zip(&streamed)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same && streamed.len() == whole.len(),
            "chunks of {sizes:?} windows: {streamed:?} against {whole:?}"
        );
    }
    // Going on from a finished stream is another thing than starting afresh: the state matters.
    context.detect_speech_on(&samples[..8 * WINDOW]).unwrap();
    let carried = context.probabilities().to_vec();
    context.detect_speech(&samples[..8 * WINDOW]).unwrap();
    assert_ne!(
        carried,
        context.probabilities(),
        "the state made no difference"
    );
    assert_eq!(context.probabilities(), &whole[..8]);
}

#[tokio::test]
async fn a_live_command_waits_through_a_pause_before_the_name_and_ends_soon_after_it() {
    // "Start the ... media server": after "start the" the brain knows a name must follow, so a
    // pause of 0.8 s does not end the request; after "media server" it is a whole command.
    let _turn = one_at_a_time().await;
    let (app, _fake) = with_cluster().await;
    // The same clip on every run: tiny.en hears some of Piper's random variations of "start
    // the" as "let's start the" or "it's dark that".
    let tts = tokio::task::spawn_blocking(|| jarvis::tts::TtsService::load(&steady_tts_config()))
        .await
        .unwrap()
        .unwrap();
    let speak = |text| {
        let clip = common::wake_clips::piper(&tts, text);
        common::wake_clips::resample(clip.rate, &clip.samples)
    };
    let mut audio = speak("Start the");
    audio.extend(noise(0.8));
    audio.extend(speak("media server."));
    let (event, after) = live(app.wyoming_addr, audio).await;
    let text = text_of(&event);
    assert_eq!(text, "start the media-server.", "{text}");
    assert!(after > 0.0, "ended {after:.2} s before the speech did");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_misheard_command_becomes_the_nearest_sentence_whisper_finds_likely() {
    // tiny.en mishears espeak-ng's first words ("Haifole is the local storage.", "This
    // media-server running."); the guided decode's beams lose such a sentence at its first
    // word. Jarvis scores the grammar's sentences nearest to the words in spelling with whisper
    // and keeps the best when whisper finds it nearly as likely as what it wrote.
    // These clips were chosen at encoder context 320, where whisper mishears their first words
    // (what this test is about). At the default 288 it mishears the first one further ("have
    // only been a local storage.", beyond the nearest sentences' reach), while the WER corpus's
    // own clip of that sentence and voice comes out right; over the whole corpus 288 loses no
    // more words than 320 (README, stop 48).
    let _turn = one_at_a_time().await;
    let mut config = stt_config();
    config.stt.min_audio_ctx = 320;
    let (app, _fake) = with_cluster_and(config).await;
    let service = app.services.stt.clone().unwrap();
    let mut misheard = 0;
    for (said, voice, wpm) in [
        ("How full is the local storage?", "en-us", 190),
        ("Is media-server running?", "en-us+f3", 190),
        ("Is any node offline?", "en-gb", 180),
    ] {
        let clip = common::wake_clips::espeak(said, voice, wpm);
        let audio = common::wake_clips::resample(clip.rate, &clip.samples);
        let words = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'')
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        };
        let free = decode_with(&service, &audio, None, "haos, media-server, local").await;
        misheard += usize::from(words(&free) != words(said));
        let text = transcribe_at_once(app.wyoming_addr, &audio, true).await;
        assert_eq!(
            words(&text),
            words(said),
            "{voice} {wpm}: free {free:?}, transcript {text:?}"
        );
    }
    assert!(
        misheard >= 2,
        "whisper heard these right without the grammar"
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn everyday_speech_is_not_bent_into_the_nearest_command() {
    // The nearest command to an everyday sentence is rarely what whisper heard: it scores it
    // far below its own words ("Turn on the kitchen lights." against "Turn on agent1.").
    let _turn = one_at_a_time().await;
    let (app, _fake) = with_cluster().await;
    for said in [
        "Turn on the kitchen lights.",
        "What time is it?",
        "Tell me a joke.",
    ] {
        let clip = common::wake_clips::espeak(said, "en-us", 160);
        let audio = common::wake_clips::resample(clip.rate, &clip.samples);
        let text = transcribe_at_once(app.wyoming_addr, &audio, true).await;
        assert_eq!(text.to_lowercase(), said.to_lowercase(), "{said}");
    }
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_command_whose_first_word_whisper_writes_as_a_number_is_guided_to_its_words() {
    // "Force stop frigate." comes out of tiny.en as "4-stop, frigate." in several voices. The
    // brain's grammar takes a VMID where a guest goes ("{guest} status"), but a number never
    // begins a sentence of the grammar, so the guided decode cannot keep the "4" (it used to,
    // and could then only end in "4 status").
    let _turn = one_at_a_time().await;
    let (app, _fake) = with_cluster().await;
    let service = app.services.stt.clone().unwrap();
    let mut heard_a_number = false;
    for (voice, wpm) in [("en-us", 150), ("en-us", 190), ("en-gb", 140)] {
        let clip = common::wake_clips::espeak("Force stop frigate.", voice, wpm);
        let audio = common::wake_clips::resample(clip.rate, &clip.samples);
        let free = decode_with(&service, &audio, None, "frigate").await;
        heard_a_number |= free.starts_with(|c: char| c.is_ascii_digit());
        let text = transcribe_at_once(app.wyoming_addr, &audio, true).await;
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        assert_eq!(
            words,
            ["force", "stop", "frigate"],
            "{voice} {wpm}: free {free:?}, transcript {text:?}"
        );
    }
    assert!(
        heard_a_number,
        "no voice was heard as \"4\" without the grammar"
    );
    app.shutdown.cancel();
}

/// Whether `text` loops as the WER bench counts it ([`common::wake_clips::loops`]), its words
/// compared in lower case without punctuation.
fn loops(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    common::wake_clips::loops(&words)
}

#[test]
fn loops_are_phrases_said_again_right_after_themselves() {
    assert!(loops(
        "Show me all my containers. Show me all my containers."
    ));
    assert!(loops("List the running guests on Nov, pve, pve, pve, pve"));
    assert!(!loops("Show me all my containers."));
    assert!(!loops("Is pve, pve ok?"));
    assert!(!loops("Start VM 101 and VM 102."));
    assert!(!loops(""));
}

/// What whisper.cpp itself makes of each of `clips` (16 kHz) with Jarvis's settings for a short
/// command (greedy, encoder context 320, the cluster's names as its prompt), but none of
/// Jarvis's own handling of loops: no cap on the tokens past 48, no logits filter, no second
/// decode.
fn whisper_alone(clips: &[Vec<i16>], prompt: &str) -> Vec<String> {
    use whisper_rs::{WhisperContext, WhisperContextParameters};
    let model = common::models_dir().join("whisper/ggml-tiny.en.bin");
    let mut context_params = WhisperContextParameters::default();
    context_params.flash_attn(true);
    let context = WhisperContext::new_with_params(model.to_str().unwrap(), context_params).unwrap();
    let mut state = context.create_state().unwrap();
    let tokens = context.tokenize(prompt, prompt.len() + 1).unwrap();
    clips
        .iter()
        .map(|samples| {
            let mut params = common::whisper_params(320, 48);
            params.set_tokens(&tokens);
            let mut audio = common::wake_clips::to_f32(samples);
            audio.resize(audio.len().max(17_600), 0.0);
            state.full(params, &audio).unwrap();
            (0..state.full_n_segments())
                .map(|i| {
                    state
                        .get_segment(i)
                        .unwrap()
                        .to_str_lossy()
                        .unwrap()
                        .into_owned()
                })
                .collect()
        })
        .collect()
}

/// A WER corpus line (spoken, as written, espeak-ng voice, words per minute) per clip, made as
/// the bench makes its clean clips.
fn espeak_commands(cases: &[(&str, &str, &str, u32)]) -> Vec<Vec<i16>> {
    cases
        .iter()
        .map(|&(spoken, _, voice, wpm)| common::wake_clips::espeak_command(spoken, voice, wpm))
        .collect()
}

#[tokio::test]
async fn commands_whisper_loops_on_come_back_once_and_whole() {
    // Clips of the WER bench's corpus (benches/data/wer, the espeak-ng voices) on which tiny.en,
    // with the encoder context Jarvis gives a short command, repeats the command until it runs
    // out of tokens ("Power cycle, nextcloud. Power cycle, nextcloud. ...") or repeats a word
    // ("List the running guests on Nov, pve, pve, pve, ..."). Jarvis cuts the loop or decodes
    // again in a wider context: every command comes back once, with its words.
    let _turn = one_at_a_time().await;
    let (app, _fake) = with_cluster().await;
    let prompt =
        "agent1, pve, local, local-lvm, nas, haos, media-server, pihole, frigate, nextcloud.";
    let mut looped_alone = 0;
    let cases = [
        ("Kill media server.", "Kill media-server.", "en-us+f3", 150),
        (
            "Show me all my containers.",
            "Show me all my containers.",
            "en-us",
            190,
        ),
        (
            "Power cycle nextcloud.",
            "Power cycle nextcloud.",
            "en-gb",
            180,
        ),
        (
            "Power cycle nextcloud.",
            "Power cycle nextcloud.",
            "en-us+f3",
            150,
        ),
        (
            "Turn off the TV in the basement.",
            "Turn off the TV in the basement.",
            "en-gb",
            140,
        ),
        ("What time is it?", "What time is it?", "en-us", 150),
    ];
    let clips = espeak_commands(&cases);
    let alone = tokio::task::spawn_blocking({
        let clips = clips.clone();
        move || whisper_alone(&clips, prompt)
    })
    .await
    .unwrap();
    for ((_, written, voice, wpm), (audio, alone)) in cases.iter().zip(clips.iter().zip(&alone)) {
        looped_alone += usize::from(loops(alone));
        let text = transcribe_at_once(app.wyoming_addr, audio, true).await;
        assert!(
            !loops(&text),
            "{voice} {wpm}: {text:?} loops (whisper alone: {alone:?})"
        );
        assert!(
            word_edits(&text, written) <= 1,
            "{voice} {wpm}: {text:?} for {written:?} (whisper alone: {alone:?})"
        );
    }
    // The clips still show what they are here for.
    assert!(
        looped_alone >= cases.len() / 2,
        "whisper alone looped on only {looped_alone} of {} clips",
        cases.len()
    );
    app.shutdown.cancel();
}

#[tokio::test]
async fn names_the_guided_greedy_decode_misses_are_found_by_its_beams() {
    // Clips of the WER bench's corpus (espeak-ng voices, made as the bench makes them) whose
    // names and numbers tiny.en mishears ("When did they jump one boot?", "What's the logam
    // image on pve?", "Power off the m1o4."), and which a greedy guided decode does not
    // correct: it follows the misheard word's first token into the grammar's nearest sentence
    // and then finds no way back ("What is the local-lvm ram?"), or whisper finds its words
    // too unlikely to keep. The guided decode's beams, ranked by whisper's own probabilities
    // (the grammar's penalties aside: vendor/whisper-rs-sys/JARVIS-PATCH.md), find the
    // command.
    let _turn = one_at_a_time().await;
    let cases = [
        (
            "When did agent one boot?",
            "When did agent1 boot?",
            "en-gb",
            140,
        ),
        (
            "What's the load average on P V E?",
            "What's the load average on pve?",
            "en-us+f3",
            150,
        ),
        (
            "What is the load on agent one?",
            "What is the load on agent1?",
            "en-us+f3",
            190,
        ),
        (
            "What's the state of VM one oh one?",
            "What's the state of VM 101?",
            "en-us+f3",
            150,
        ),
        (
            "Power off VM one oh four.",
            "Power off VM 104.",
            "en-gb",
            140,
        ),
        ("Stop VM one oh two.", "Stop VM 102.", "en-us", 190),
    ];
    let clips = espeak_commands(&cases);
    let mut right = Vec::new();
    for beams in [jarvis::config::SttGrammarConfig::default().beams, 1] {
        let mut config = stt_config();
        config.stt.grammar.beams = beams;
        let (app, _fake) = with_cluster_and(config).await;
        let mut heard = Vec::new();
        for ((_, written, voice, wpm), audio) in cases.iter().zip(&clips) {
            let text = transcribe_at_once(app.wyoming_addr, audio, true).await;
            heard.push((
                word_edits(&text, written) == 0,
                format!("{voice} {wpm}: {text:?}"),
            ));
        }
        app.shutdown.cancel();
        right.push(heard);
    }
    let count = |heard: &[(bool, String)]| heard.iter().filter(|(ok, _)| *ok).count();
    // Jarvis as it ships: each command word for word (one may slip on another CPU, whose
    // floating point differs).
    assert!(
        count(&right[0]) >= cases.len() - 1,
        "with the guided beams: {:?}",
        right[0]
    );
    // The clips still show what they are here for: greedily guided, the decode misses
    // commands the beams find. (Since the nearest sentences read "1-01" and "1.0.4" as the
    // numbers, most of these are found before any guided decode runs: 4 of 6 greedily.)
    assert!(
        count(&right[1]) < count(&right[0]),
        "greedily guided: {:?}; with the beams: {:?}",
        right[1],
        right[0]
    );
    // A number said digit by digit comes out as the number however the guided decode searches.
    for heard in &right {
        for at in [3, 4] {
            assert!(heard[at].0, "{:?}", heard[at].1);
        }
    }
}

#[tokio::test]
async fn noise_alone_gives_an_empty_transcript_not_whispers_annotations() {
    // tiny.en writes white noise as "[BLANK_AUDIO]", and now and then cut short as
    // "[BLANK_AUD]" or "[BLANKS]": none of them is speech.
    let _turn = one_at_a_time().await;
    let app = spawn_app(stt_config()).await;
    let mut rng = common::wake_clips::Rng(0x9e37_79b9_7f4a_7c15);
    for (amplitude, seconds) in [
        (300.0, 1.2),
        (1_000.0, 2.0),
        (3_000.0, 3.0),
        (10_000.0, 1.2),
    ] {
        let samples: Vec<i16> = (0..(seconds * 16_000.0) as usize)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * amplitude) as i16)
            .collect();
        let text = transcribe_at_once(app.wyoming_addr, &samples, true).await;
        assert_eq!(text, "", "noise at {amplitude} for {seconds} s");
    }
    app.shutdown.cancel();
}
