//! [`EventReader`] and [`EventWriter`]: typed events over any byte stream.
//!
//! They are separate halves so one task can read while another writes (a TTS server sends audio
//! while text is still arriving; an STT server may answer before the audio ends).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::codec::{Limits, WyomingCodec};
use crate::error::ProtocolError;
use crate::event::Event;
use crate::frame::Frame;

/// tokio-util's default buffer size: the read buffer once a connection has sent an event, and
/// the write buffer's backpressure boundary (events fed past it are written out before more).
const FRAMED_CAPACITY: usize = 8 * 1024;

/// Reads events from a byte stream.
#[derive(Debug)]
pub struct EventReader<R> {
    inner: FramedRead<R, WyomingCodec>,
    idle_timeout: Option<Duration>,
    /// Whether the buffer has been given [`FRAMED_CAPACITY`] (after the first event).
    sized: bool,
}

impl<R: AsyncRead + Unpin> EventReader<R> {
    /// A reader with the given limits and no idle timeout.
    ///
    /// Its buffer grows from nothing as the first event arrives, then holds [`FRAMED_CAPACITY`]
    /// (see [`EventWriter::new`]: a connection that sends nothing costs no buffer).
    pub fn new(io: R, limits: Limits) -> Self {
        Self {
            inner: FramedRead::with_capacity(io, WyomingCodec::new(limits), 0),
            idle_timeout: None,
            sized: false,
        }
    }

    /// Fails a read with [`ProtocolError::IdleTimeout`] when no complete event arrives in time.
    /// This also catches a peer that sends half a frame and stalls.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Reads the next frame; `Ok(None)` at a clean end of stream.
    ///
    /// # Errors
    /// Any [`ProtocolError`]; after one with [`ProtocolError::is_fatal`] the stream is done.
    ///
    /// # Cancel safety
    /// Cancel safe: a partly read frame stays buffered for the next call.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let next = match self.idle_timeout {
            Some(limit) => tokio::time::timeout(limit, self.inner.next())
                .await
                .map_err(|_| ProtocolError::IdleTimeout(limit))?,
            None => self.inner.next().await,
        };
        let frame = next.transpose()?;
        if frame.is_some() && !self.sized {
            // Up to here the buffer grew by doubling from 8 bytes. Left so, a payload still held
            // (it shares the buffer) would make each later read as small as the room left.
            self.sized = true;
            self.inner.read_buffer_mut().reserve(FRAMED_CAPACITY);
        }
        Ok(frame)
    }

    /// Reads the next event; `Ok(None)` at a clean end of stream.
    ///
    /// # Errors
    /// Any [`ProtocolError`]. [`ProtocolError::InvalidEvent`] (a well-formed frame whose data does
    /// not fit its type) is not fatal: the next call reads the next event.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`EventReader::read_frame`].
    pub async fn read_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        match self.read_frame().await? {
            Some(frame) => Event::from_frame(frame).map(Some),
            None => Ok(None),
        }
    }

    /// The underlying byte stream.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }
}

/// Writes events to a byte stream.
#[derive(Debug)]
pub struct EventWriter<W> {
    inner: FramedWrite<W, WyomingCodec>,
}

impl<W: AsyncWrite + Unpin> EventWriter<W> {
    /// A writer. Limits only matter for reading, so the defaults are used.
    ///
    /// Its buffer is allocated by the first event written and grows to what the events need:
    /// a server holds many connections that have sent nothing yet (a storm of 1000 connects, a
    /// satellite between requests), and `FramedWrite` would give each 8 KiB up front.
    pub fn new(io: W) -> Self {
        let mut inner = FramedWrite::with_capacity(io, WyomingCodec::default(), 0);
        // `with_capacity` makes the size its backpressure boundary too: keep the default, so
        // events fed in a batch are still written together at the flush.
        inner.set_backpressure_boundary(FRAMED_CAPACITY);
        Self { inner }
    }

    /// Writes one event and flushes it.
    ///
    /// # Errors
    /// I/O errors of the stream.
    ///
    /// # Cancel safety
    /// Not cancel safe: cancelled mid-write, part of the event may have been sent.
    pub async fn write_event(&mut self, event: impl Into<Event>) -> Result<(), ProtocolError> {
        self.inner.send(&event.into()).await
    }

    /// Writes one frame as it is and flushes it.
    ///
    /// # Errors
    /// I/O errors of the stream.
    ///
    /// # Cancel safety
    /// Not cancel safe, as [`EventWriter::write_event`].
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        self.inner.send(frame).await
    }

    /// Queues an event without flushing; call [`EventWriter::flush`] after a batch.
    ///
    /// # Errors
    /// I/O errors of the stream (when the buffer had to be written out).
    pub async fn feed_event(&mut self, event: impl Into<Event>) -> Result<(), ProtocolError> {
        self.inner.feed(&event.into()).await
    }

    /// Flushes queued events.
    ///
    /// # Errors
    /// I/O errors of the stream.
    pub async fn flush(&mut self) -> Result<(), ProtocolError> {
        SinkExt::<&Event>::flush(&mut self.inner).await
    }

    /// Shuts the write half down (the peer reads end of stream).
    ///
    /// # Errors
    /// I/O errors of the stream.
    pub async fn shutdown(&mut self) -> Result<(), ProtocolError> {
        SinkExt::<&Event>::close(&mut self.inner).await
    }

    /// The underlying byte stream.
    pub fn get_ref(&self) -> &W {
        self.inner.get_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_that_sends_nothing_holds_no_buffers() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (read, write) = tokio::io::split(ours);
        let reader = EventReader::new(read, Limits::default());
        let writer = EventWriter::new(write);
        assert_eq!(reader.inner.read_buffer().capacity(), 0);
        assert_eq!(writer.inner.write_buffer().capacity(), 0);
        assert_eq!(writer.inner.backpressure_boundary(), FRAMED_CAPACITY);
    }

    #[tokio::test]
    async fn buffers_grow_with_the_first_event_and_held_payloads_stay_whole() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let mut reader = EventReader::new(ours, Limits::default());
        let mut writer = EventWriter::new(theirs);
        let frames: Vec<Frame> = (0..40u8)
            .map(|i| Frame::new("audio-chunk").with_payload(vec![i; 1000 + 97 * usize::from(i)]))
            .collect();
        let sending = async {
            for frame in &frames {
                writer.write_frame(frame).await.unwrap();
            }
            writer.inner.write_buffer().capacity()
        };
        let receiving = async {
            let mut held = Vec::new();
            while held.len() < frames.len() {
                held.push(reader.read_frame().await.unwrap().unwrap());
                // Sized after the first event; payloads held meanwhile share the buffer.
                assert!(reader.sized);
            }
            held
        };
        let (written_capacity, held) = tokio::join!(sending, receiving);
        assert!(written_capacity >= 1000, "grew to the events written");
        assert_eq!(
            held, frames,
            "every payload as sent, though held while reading on"
        );
    }
}
