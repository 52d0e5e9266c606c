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
    broken: bool,
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
            buf: Vec::with_capacity(520),
            broken: false,
        }
    }

    /// How long a request waits for its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
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
        self.transaction = self.transaction.wrapping_add(1);
        let transaction = self.transaction;
        frame::encode_tcp(transaction, unit, request, &mut self.out).map_err(CallError::Frame)?;
        let deadline = Instant::now() + self.timeout;
        self.write_out(deadline).await?;
        loop {
            match frame::parse_tcp_frame(&self.buf) {
                Ok(Some(found)) => {
                    let len = found.len;
                    let result = if found.transaction != transaction {
                        // The late answer to a request that timed out: skip it.
                        tracing::debug!(
                            got = found.transaction,
                            want = transaction,
                            "skipping a stale Modbus TCP answer"
                        );
                        None
                    } else if found.unit != unit {
                        Some(Err(CallError::Frame(FrameError::Unit {
                            expected: unit,
                            got: found.unit,
                        })))
                    } else {
                        Some(frame::decode_response_pdu(request, found.pdu).map_err(CallError::Frame))
                    };
                    self.buf.drain(..len);
                    if let Some(result) = result {
                        return result;
                    }
                }
                Ok(None) => self.read_more(deadline).await?,
                Err(e) => {
                    // The byte stream is out of step with frames: only a new connection helps.
                    self.broken = true;
                    return Err(CallError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        e.to_string(),
                    )));
                }
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
                    let result = if found.unit != unit {
                        Err(CallError::Frame(FrameError::Unit {
                            expected: unit,
                            got: found.unit,
                        }))
                    } else {
                        frame::decode_response_pdu(request, found.pdu).map_err(CallError::Frame)
                    };
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

    async fn write_out(&mut self, deadline: Instant) -> Result<(), CallError> {
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
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

    /// Reads what is available into the buffer; cancel-safe, so a timeout loses nothing.
    async fn read_more(&mut self, deadline: Instant) -> Result<(), CallError> {
        let mut chunk = [0u8; 512];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(CallError::Timeout(self.timeout)),
            Ok(Ok(0)) => Err(CallError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the device closed the connection",
            ))),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(CallError::Io(e)),
        }
    }

    /// Drops buffered and already-arrived bytes without waiting (RTU resynchronisation).
    fn discard_pending(&mut self) {
        use futures::FutureExt;
        self.buf.clear();
        let mut chunk = [0u8; 256];
        for _ in 0..64 {
            match self.stream.read(&mut chunk).now_or_never() {
                Some(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
    }
}

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
