//! [`Client`]: connect to a Wyoming server over TCP and exchange events.

use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::codec::Limits;
use crate::error::ProtocolError;
use crate::event::Event;
use crate::info::{Describe, Info};
use crate::stream::{EventReader, EventWriter};

/// A TCP connection to a Wyoming server.
///
/// ```no_run
/// # async fn demo() -> Result<(), wyoming::ProtocolError> {
/// let mut client = wyoming::Client::connect("127.0.0.1:10700").await?;
/// let info = client.describe().await?;
/// println!("{} speech-to-text programs", info.asr.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    reader: EventReader<OwnedReadHalf>,
    writer: EventWriter<OwnedWriteHalf>,
}

impl Client {
    /// Connects with the default limits.
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Self, ProtocolError> {
        Self::connect_with(addr, Limits::default()).await
    }

    /// Connects with the given read limits.
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        limits: Limits,
    ) -> Result<Self, ProtocolError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self::from_stream(stream, limits))
    }

    /// Wraps an established stream.
    pub fn from_stream(stream: TcpStream, limits: Limits) -> Self {
        let (read, write) = stream.into_split();
        Self {
            reader: EventReader::new(read, limits),
            writer: EventWriter::new(write),
        }
    }

    /// Fails reads that wait longer than `timeout` for an event.
    #[must_use]
    pub fn with_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.reader = self.reader.with_idle_timeout(timeout);
        self
    }

    /// Sends an event.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn send(&mut self, event: impl Into<Event>) -> Result<(), ProtocolError> {
        self.writer.write_event(event).await
    }

    /// Receives the next event; `Ok(None)` when the server closed the connection.
    ///
    /// # Errors
    /// Any [`ProtocolError`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Result<Option<Event>, ProtocolError> {
        self.reader.read_event().await
    }

    /// Sends `describe` and waits for `info`, skipping other events as Home Assistant does.
    ///
    /// # Errors
    /// Any [`ProtocolError`]; an `UnexpectedEof` when the server closes before answering.
    pub async fn describe(&mut self) -> Result<Info, ProtocolError> {
        self.send(Describe {}).await?;
        loop {
            match self.recv().await? {
                Some(Event::Info(info)) => return Ok(info),
                Some(_) => continue,
                None => return Err(ProtocolError::UnexpectedEof { missing: 0 }),
            }
        }
    }

    /// Splits into the read and write halves.
    pub fn into_split(self) -> (EventReader<OwnedReadHalf>, EventWriter<OwnedWriteHalf>) {
        (self.reader, self.writer)
    }
}
