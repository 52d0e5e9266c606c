//! One connection to a CPU: TCP, the COTP connection (TSAPs), setup communication (PDU
//! size), then jobs one at a time, each answered by the frame echoing its PDU reference.
//!
//! Transport failures ([`CallError`]) stay apart from the CPU's answers: a call returns the
//! answer's frame, and the caller decodes it. A late answer to an earlier, timed-out job
//! carries an older reference and is dropped. Anything that leaves the byte stream in
//! doubt (a frame cut short by a timeout, bytes that are not TPKT, a frame over
//! [`MAX_FRAME`]) is [`CallError::Io`]: the connection must be dropped.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::S7Settings;
use crate::frame::{self, FrameError, MAX_FRAME, Refusal};

/// Why a call got no answer to decode.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing (with this job's reference) arrived in time; the connection is still usable.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A well-framed answer that is not valid S7comm; the connection is still in step.
    #[error("malformed answer: {0}")]
    Frame(FrameError),
    /// The connection is lost or out of step.
    #[error("{0}")]
    Io(io::Error),
}

fn lost(e: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// An open, set-up connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    next_ref: u16,
    pdu: u16,
    timeout: Duration,
    /// Answers dropped because their reference was not the one awaited.
    pub stale: u64,
}

impl Connection {
    /// Connects, opens the COTP connection and negotiates the PDU size, each step within
    /// `settings.timeout`.
    pub async fn open(settings: &S7Settings) -> io::Result<Connection> {
        let timeout = settings.timeout;
        let address = (settings.endpoint.host.as_str(), settings.endpoint.port);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TCP connect took over {timeout:?}"),
                )
            })??;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            buf: Vec::with_capacity(1024),
            next_ref: 1,
            pdu: settings.pdu_size,
            timeout,
            stale: 0,
        };
        conn.stream
            .write_all(&frame::connect_request(settings.local_tsap, settings.remote_tsap))
            .await?;
        let deadline = Instant::now() + timeout;
        let confirm = conn.read_frame(deadline).await.map_err(|e| match e {
            CallError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::TimedOut, format!("COTP connection: {other}")),
        })?;
        frame::connect_confirm(&confirm)
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))?;
        let reference = conn.take_ref();
        let answer = conn
            .call(reference, frame::setup_request(reference, settings.pdu_size))
            .await
            .map_err(|e| match e {
                CallError::Io(e) => e,
                other => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("setup communication: {other}"),
                ),
            })?;
        let granted = frame::parse_pdu(&answer)
            .and_then(|pdu| frame::setup_answer(&pdu))
            .map_err(lost)?
            .map_err(|r: Refusal| {
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("setup communication: {r}"),
                )
            })?;
        conn.pdu = granted.min(settings.pdu_size);
        Ok(conn)
    }

    /// The PDU size both sides agreed on.
    pub fn pdu(&self) -> u16 {
        self.pdu
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A fresh PDU reference for the next job.
    pub fn take_ref(&mut self) -> u16 {
        let r = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1).max(1);
        r
    }

    /// Sends `request` (built with `reference`) and returns the answer's whole frame.
    pub async fn call(&mut self, reference: u16, request: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout_at(deadline, self.stream.write_all(&request)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(CallError::Io(e)),
            Err(_) => {
                return Err(CallError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request could not be sent in time",
                )));
            }
        }
        loop {
            let answer = self.read_frame(deadline).await?;
            let pdu = frame::parse_pdu(&answer).map_err(CallError::Frame)?;
            if pdu.pdu_ref == reference {
                return Ok(answer);
            }
            self.stale += 1;
            tracing::debug!(
                expected = reference,
                got = pdu.pdu_ref,
                "dropped an answer with another PDU reference"
            );
        }
    }

    /// Reads one whole frame by `deadline`.
    async fn read_frame(&mut self, deadline: Instant) -> Result<Vec<u8>, CallError> {
        loop {
            match frame::frame_len(&self.buf) {
                Ok(Some(len)) => {
                    let rest = self.buf.split_off(len);
                    return Ok(std::mem::replace(&mut self.buf, rest));
                }
                Ok(None) => {}
                Err(e) => return Err(CallError::Io(lost(e))),
            }
            let mut chunk = [0u8; 1024];
            let want = MAX_FRAME.saturating_sub(self.buf.len()).clamp(1, chunk.len());
            let read = tokio::time::timeout_at(
                deadline,
                self.stream.read(chunk.get_mut(..want).unwrap_or_default()),
            )
            .await;
            match read {
                Ok(Ok(0)) => {
                    return Err(CallError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the CPU closed the connection",
                    )));
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Ok(Err(e)) => return Err(CallError::Io(e)),
                Err(_) if self.buf.is_empty() => return Err(CallError::Timeout(self.timeout)),
                Err(_) => {
                    return Err(CallError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("an answer stopped after {} bytes", self.buf.len()),
                    )));
                }
            }
        }
    }
}
