//! One connection to a Modbus device: Modbus TCP, RTU over a serial line, or RTU over TCP.
//!
//! [`Connection::call`] sends one request and waits for its answer within the timeout.
//! Three outcomes are kept apart, as tokio-modbus does: a [`Reply`] (data or a device
//! exception), a [`CallError::Timeout`] or malformed answer (this request failed, the
//! connection is still usable), and [`CallError::Io`] (the connection is gone).
//!
//! Reads go through our own buffer with cancel-safe `read` calls, so a frame cut by a
//! timeout is completed later and, on TCP, recognised by its transaction id as the late
//! answer to an abandoned request and skipped.
//!
//! On TCP, several requests can be outstanding at once: [`Connection::queue_tcp`] and
//! [`Connection::flush`] send them in one write, [`Connection::next_tcp_frame`] hands each
//! answer over by its transaction id ([`crate::window`] keeps track of them).

use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Endpoint;
use crate::frame::{self, FrameError, Reply, Request};

/// A byte stream to a device.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed answer: {0}")]
    Frame(FrameError),
    /// The connection is lost or unusable; open a new one.
    #[error("connection lost: {0}")]
    Io(io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Tcp,
    Rtu,
}

/// An open connection.
pub struct Connection {
    stream: Pin<Box<dyn Stream>>,
    framing: Framing,
    timeout: Duration,
    inter_frame: Duration,
    /// When the line was last busy (RTU needs silence before the next frame).
    last_activity: Instant,
    transaction: u16,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already taken as frames (TCP answers are taken one by
    /// one from a read that may hold several).
    taken: usize,
    broken: bool,
    /// TCP answers that came after their request was given up, since last taken.
    late: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("framing", &self.framing)
            .field("timeout", &self.timeout)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects within `timeout`.
    pub async fn open(
        endpoint: &Endpoint,
        timeout: Duration,
        inter_frame: Duration,
    ) -> io::Result<Connection> {
        let (stream, framing): (Pin<Box<dyn Stream>>, Framing) = match endpoint {
            Endpoint::Tcp { host, port } => {
                (Box::pin(connect_tcp(host, *port, timeout).await?), Framing::Tcp)
            }
            Endpoint::RtuOverTcp { host, port } => {
                (Box::pin(connect_tcp(host, *port, timeout).await?), Framing::Rtu)
            }
            Endpoint::Rtu(line) => (Box::pin(line.open()?), Framing::Rtu),
        };
        Ok(Connection::from_stream(
            stream,
            framing == Framing::Rtu,
            timeout,
            inter_frame,
        ))
    }

    /// Wraps an already open stream (tests, custom transports).
    pub fn from_stream(
        stream: Pin<Box<dyn Stream>>,
        rtu: bool,
        timeout: Duration,
        inter_frame: Duration,
    ) -> Connection {
        Connection {
            stream,
            framing: if rtu { Framing::Rtu } else { Framing::Tcp },
            timeout,
            inter_frame,
            last_activity: Instant::now(),
            transaction: 0,
            out: Vec::with_capacity(260),
            buf: Vec::with_capacity(READ_CHUNK),
            taken: 0,
            broken: false,
            late: 0,
        }
    }

    /// How long a request waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True for Modbus TCP framing, where answers carry the transaction id of their request.
    pub fn is_tcp(&self) -> bool {
        self.framing == Framing::Tcp
    }

    /// True once an I/O error or a framing error made the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `request` to `unit`, retrying `retries` times after a timeout or a malformed
    /// answer. Device exceptions are answers and are not retried.
    pub async fn call_with_retries(
        &mut self,
        unit: u8,
        request: &Request,
        retries: u32,
    ) -> Result<Reply, CallError> {
        let mut attempt = 0;
        loop {
            match self.call(unit, request).await {
                Err(CallError::Timeout(_) | CallError::Frame(_)) if attempt < retries && !self.broken => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends `request` to `unit` once and waits for its answer.
    pub async fn call(&mut self, unit: u8, request: &Request) -> Result<Reply, CallError> {
        if self.broken {
            return Err(CallError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection was reset after an earlier error",
            )));
        }
        let result = match self.framing {
            Framing::Tcp => self.call_tcp(unit, request).await,
            Framing::Rtu => self.call_rtu(unit, request).await,
        };
        if let Err(CallError::Io(_)) = &result {
            self.broken = true;
        }
        result
    }

    async fn call_tcp(&mut self, unit: u8, request: &Request) -> Result<Reply, CallError> {
        self.out.clear();
        let transaction = self.queue_tcp(unit, request).map_err(CallError::Frame)?;
        let deadline = Instant::now() + self.timeout;
        self.write_out(deadline).await?;
        let mut late = 0;
        let answer = loop {
            let answer = self
                .next_tcp_frame(deadline, |got, got_unit, pdu| {
                    if got != transaction {
                        // The late answer to a request that timed out: skip it.
                        tracing::debug!(got, want = transaction, "skipping a stale Modbus TCP answer");
                        late += 1;
                        None
                    } else {
                        Some(frame::decode_answer(unit, request, got_unit, pdu).map_err(CallError::Frame))
                    }
                })
                .await;
            match answer {
                Ok(Some(answer)) => break Ok(answer),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        self.note_late(late);
        answer?
    }

    /// Counts answers to requests already given up (the windowed lane finds them itself).
    pub fn note_late(&mut self, answers: u64) {
        self.late += answers;
    }

    /// Answers that came after their request was given up, since the last call: a steady
    /// count means answers take longer than `timeout`.
    pub fn take_late_answers(&mut self) -> u64 {
        std::mem::take(&mut self.late)
    }

    /// Encodes a Modbus TCP request for `unit` behind those already queued and returns its
    /// transaction id; [`Connection::flush`] sends them.
    pub fn queue_tcp(&mut self, unit: u8, request: &Request) -> Result<u16, FrameError> {
        self.transaction = self.transaction.wrapping_add(1);
        frame::encode_tcp(self.transaction, unit, request, &mut self.out)?;
        Ok(self.transaction)
    }

    /// Sends the queued requests in one write, within `deadline`.
    pub async fn flush(&mut self, deadline: Instant) -> Result<(), CallError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.write_out(deadline).await;
        if let Err(CallError::Io(_)) = &result {
            self.broken = true;
        }
        result
    }

    /// Waits until `deadline` for the next whole Modbus TCP frame and hands its transaction
    /// id, unit and PDU to `take`; the frame is consumed either way. `Timeout` when none
    /// came; `Io` when the connection is lost or its bytes are out of step with frames.
    pub async fn next_tcp_frame<T>(
        &mut self,
        deadline: Instant,
        mut take: impl FnMut(u16, u8, &[u8]) -> T,
    ) -> Result<T, CallError> {
        loop {
            if let Some(taken) = self.buffered_tcp_frame(&mut take)? {
                return Ok(taken);
            }
            if let Err(e) = self.read_more(deadline).await {
                if let CallError::Io(_) = e {
                    self.broken = true;
                }
                return Err(e);
            }
        }
    }

    /// Like [`Connection::next_tcp_frame`] for a frame already read, without waiting.
    pub fn buffered_tcp_frame<T>(
        &mut self,
        take: &mut impl FnMut(u16, u8, &[u8]) -> T,
    ) -> Result<Option<T>, CallError> {
        let rest = self.buf.get(self.taken..).unwrap_or_default();
        match frame::parse_tcp_frame(rest) {
            Ok(Some(found)) => {
                let taken = take(found.transaction, found.unit, found.pdu);
                self.taken += found.len;
                if self.taken >= self.buf.len() {
                    self.buf.clear();
                    self.taken = 0;
                }
                Ok(Some(taken))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // The byte stream is out of step with frames: only a new connection helps.
                self.broken = true;
                Err(CallError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e.to_string(),
                )))
            }
        }
    }

    async fn call_rtu(&mut self, unit: u8, request: &Request) -> Result<Reply, CallError> {
        frame::encode_rtu(unit, request, &mut self.out).map_err(CallError::Frame)?;
        // Silence on the line, then forget anything that arrived late for an earlier request.
        tokio::time::sleep_until(self.last_activity + self.inter_frame).await;
        self.discard_pending();
        let deadline = Instant::now() + self.timeout;
        self.write_out(deadline).await?;
        let result = loop {
            match frame::parse_rtu_response(&self.buf) {
                Ok(Some(found)) => {
                    let result =
                        frame::decode_answer(unit, request, found.unit, found.pdu).map_err(CallError::Frame);
                    self.buf.clear();
                    break result;
                }
                Ok(None) => match self.read_more(deadline).await {
                    Ok(()) => {}
                    Err(e) => break Err(e),
                },
                Err(e) => {
                    self.buf.clear();
                    break Err(CallError::Frame(e));
                }
            }
        };
        self.last_activity = Instant::now();
        result
    }

    /// Writes `out` and empties it.
    async fn write_out(&mut self, deadline: Instant) -> Result<(), CallError> {
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        let written = tokio::time::timeout_at(deadline, write).await;
        self.out.clear();
        match written {
            Ok(Ok(())) => {
                self.last_activity = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => Err(CallError::Io(e)),
            // A write that cannot complete means the peer stopped reading: give up on it.
            Err(_) => {
                self.broken = true;
                Err(CallError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "write timed out",
                )))
            }
        }
    }

    /// Reads what is available into the buffer's free room (at least [`READ_CHUNK`] bytes,
    /// so answers that arrived together come in one call); cancel-safe, so a timeout loses
    /// nothing. Bounded: the buffer is read only when no whole frame is left in it, so it
    /// holds at most one incomplete frame and one read.
    async fn read_more(&mut self, deadline: Instant) -> Result<(), CallError> {
        if self.taken > 0 {
            self.buf.drain(..self.taken);
            self.taken = 0;
        }
        self.buf.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(CallError::Timeout(self.timeout)),
            Ok(Ok(0)) => Err(CallError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the device closed the connection",
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(CallError::Io(e)),
        }
    }

    /// Drops buffered and already-arrived bytes without waiting (RTU resynchronisation).
    fn discard_pending(&mut self) {
        use futures::FutureExt;
        self.buf.clear();
        self.taken = 0;
        let mut chunk = [0u8; 256];
        for _ in 0..64 {
            match self.stream.read(&mut chunk).now_or_never() {
                Some(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Free room for each read: 15 answers of 125 registers.
const READ_CHUNK: usize = 4096;

async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {host}:{port} timed out"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::address::Area;
    use crate::frame::Data;
    use tokio::io::duplex;

    fn conn(stream: tokio::io::DuplexStream, rtu: bool) -> Connection {
        Connection::from_stream(Box::pin(stream), rtu, Duration::from_millis(200), Duration::ZERO)
    }

    const READ2: Request = Request::Read {
        area: Area::HoldingRegister,
        start: 0,
        count: 2,
    };

    #[tokio::test]
    async fn late_tcp_answers_are_skipped_by_transaction_id() {
        let (client, mut device) = duplex(1024);
        let mut c = conn(client, false);
        // First request: the device answers too late.
        assert!(matches!(c.call(1, &READ2).await, Err(CallError::Timeout(_))));
        let mut req = [0u8; 12];
        device.read_exact(&mut req).await.unwrap();
        device
            .write_all(&[0, 1, 0, 0, 0, 7, 1, 3, 4, 0, 9, 0, 9])
            .await
            .unwrap();
        // Second request: its answer arrives after the stale one.
        let second = tokio::spawn(async move {
            let mut req = [0u8; 12];
            device.read_exact(&mut req).await.unwrap();
            assert_eq!(&req[..2], &[0, 2]);
            device
                .write_all(&[0, 2, 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2])
                .await
                .unwrap();
            device
        });
        assert_eq!(c.call(1, &READ2).await.unwrap(), Ok(Data::Registers(vec![1, 2])));
        second.await.unwrap();
        assert_eq!(c.take_late_answers(), 1, "counted");
        assert_eq!(c.take_late_answers(), 0, "once");
    }

    #[tokio::test]
    async fn a_closed_socket_is_a_lost_connection() {
        let (client, device) = duplex(64);
        let mut c = conn(client, false);
        drop(device);
        assert!(matches!(c.call(1, &READ2).await, Err(CallError::Io(_))));
        assert!(c.is_broken());
    }

    #[tokio::test]
    async fn rtu_answers_are_read_across_chunks_and_crc_checked() {
        let (client, mut device) = duplex(1024);
        let mut c = conn(client, true);
        let task = tokio::spawn(async move {
            let mut req = [0u8; 8];
            device.read_exact(&mut req).await.unwrap();
            let mut answer = vec![7, 3, 4, 0, 5, 0, 6];
            let crc = frame::crc16(&answer);
            answer.extend_from_slice(&crc.to_le_bytes());
            device.write_all(&answer[..3]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            device.write_all(&answer[3..]).await.unwrap();
            // Then a corrupted one.
            device.read_exact(&mut req).await.unwrap();
            answer[4] ^= 0xFF;
            device.write_all(&answer).await.unwrap();
            device
        });
        assert_eq!(c.call(7, &READ2).await.unwrap(), Ok(Data::Registers(vec![5, 6])));
        assert!(matches!(
            c.call(7, &READ2).await,
            Err(CallError::Frame(FrameError::Crc { .. }))
        ));
        assert!(!c.is_broken());
        task.await.unwrap();
    }
}
