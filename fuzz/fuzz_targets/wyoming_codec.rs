//! The Wyoming codec and event parsing: bytes fed in pieces (the first byte sets the piece
//! size, as a slow or bursty peer would send them) through `WyomingCodec::decode`, each frame
//! made an `Event`; every event that comes out must encode and decode back to itself.
#![no_main]

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use wyoming::{Event, Limits, WyomingCodec};

/// Small limits, so the fuzzer reaches them.
const LIMITS: Limits = Limits {
    max_line: 1024,
    max_data: 4096,
    max_payload: 4096,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut codec = WyomingCodec::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut failed = false;
    for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    if !failed {
        while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
            frames.push(frame);
        }
    }
    for frame in frames {
        let Ok(event) = Event::try_from(frame) else {
            continue;
        };
        let _ = format!("{event:?}");
        let mut out = BytesMut::new();
        if WyomingCodec::default().encode(&event, &mut out).is_err() {
            continue;
        }
        let again = WyomingCodec::default()
            .decode(&mut out)
            .expect("an encoded event decodes")
            .expect("an encoded event is whole");
        let again = Event::try_from(again).expect("an encoded event parses");
        assert_eq!(
            again, event,
            "the event changed on its way through the codec"
        );
    }
});
