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

/// Reads events from a byte stream.
#[derive(Debug)]
pub struct EventReader<R> {
    inner: FramedRead<R, WyomingCodec>,
    idle_timeout: Option<Duration>,
}

impl<R: AsyncRead + Unpin> EventReader<R> {
    /// A reader with the given limits and no idle timeout.
    pub fn new(io: R, limits: Limits) -> Self {
        Self {
            inner: FramedRead::new(io, WyomingCodec::new(limits)),
            idle_timeout: None,
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
        next.transpose()
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
    pub fn new(io: W) -> Self {
        Self {
            inner: FramedWrite::new(io, WyomingCodec::default()),
        }
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
