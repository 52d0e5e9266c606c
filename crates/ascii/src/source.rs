//! The running `ascii` source: opens the serial port or TCP connection, sends the poll
//! command when one is configured, feeds what it reads to [`Lines`], and reconnects with
//! the shared [`Backoff`] when the device goes away.
//!
//! Failure rules (docs/connectors/ascii.md):
//! - a bad line (too long, bad checksum, no pattern matches) is counted and dropped; the
//!   lines around it are delivered; a capture that does not parse turns only its value
//!   bad (`type_mismatch`);
//! - no answer to a poll within its timeout turns every value bad (`timeout`) until the
//!   next answer; the port stays open;
//! - a lost connection (EOF, read or write error, the port vanishing) turns every value
//!   bad (`comm_failure`) and the source reopens it after a backoff, showing `degraded`
//!   in health meanwhile. It never ends the source.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use backplane_connector::{Backoff, ComponentError, RawReading, Source, SourceIo};
use backplane_model::{BadReason, Quality, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::{AsciiSettings, Endpoint};
use crate::decode::LineDecoder;
use crate::errors::ErrorKind;
use crate::frame::Framer;
use crate::lines::Lines;

/// A serial port or a TCP stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Opens the device's port or connection.
pub async fn open(settings: &AsciiSettings) -> io::Result<Box<dyn Stream>> {
    match &settings.endpoint {
        Endpoint::Serial(line) => Ok(Box::new(line.open()?)),
        Endpoint::Tcp { host, port } => {
            let stream = tokio::time::timeout(
                settings.connect_timeout,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", settings.connect_timeout),
                )
            })??;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
    }
}

/// A running `ascii` source.
#[derive(Debug)]
pub struct AsciiSource {
    pub(crate) name: String,
    pub(crate) settings: Arc<AsciiSettings>,
    pub(crate) decoder: LineDecoder,
}

/// How a session ended.
enum Ended {
    /// The engine is stopping.
    Stopped,
    Lost(String),
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl AsciiSource {
    fn all(&self, quality: Quality) -> Vec<RawReading> {
        self.decoder
            .targets()
            .iter()
            .map(|t| RawReading {
                address: t.address,
                value: None,
                quality,
                source_time: None,
            })
            .collect()
    }

    async fn run_inner(self, io: SourceIo) -> Result<(), ComponentError> {
        let mut lines = Lines::new(
            &self.name,
            Framer::new(self.settings.framing, self.settings.max_line),
            self.decoder.clone(),
            |event| io.status.counter(event),
        );
        let endpoint = self.settings.endpoint.to_string();
        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max);
        let reconnects = io.status.counter("reconnects");
        // Whether the values were already turned bad for the current outage.
        let mut down = false;
        let mut failures = 0u64;
        loop {
            let opened = tokio::select! {
                () = io.cancelled() => return Ok(()),
                opened = open(&self.settings) => opened,
            };
            let why = match opened {
                Ok(stream) => {
                    tracing::info!(source = %self.name, %endpoint, "ascii: connected");
                    io.status.set_degraded(None);
                    down = false;
                    failures = 0;
                    lines.reset();
                    match self.session(stream, &io, &mut lines, &mut backoff).await {
                        Ended::Stopped => return Ok(()),
                        Ended::Lost(why) => {
                            tracing::warn!(source = %self.name, %endpoint, "ascii: connection lost: {why}; reconnecting");
                            why
                        }
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    // The first failure of an outage in full; the rest at debug level.
                    if failures == 0 {
                        tracing::warn!(source = %self.name, %endpoint, "ascii: cannot open: {why}; retrying with backoff");
                    } else {
                        tracing::debug!(source = %self.name, %endpoint, failures, "ascii: cannot open: {why}");
                    }
                    failures += 1;
                    why
                }
            };
            io.status.set_degraded(Some(format!("{endpoint}: {why}")));
            if !down {
                down = true;
                if !io
                    .emit(Timestamp::now(), self.all(Quality::Bad(BadReason::CommFailure)))
                    .await
                {
                    return Ok(());
                }
            }
            reconnects.inc();
            let delay = backoff.next_delay();
            tokio::select! {
                () = io.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(
        &self,
        stream: Box<dyn Stream>,
        io: &SourceIo,
        lines: &mut Lines,
        backoff: &mut Backoff,
    ) -> Ended {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = vec![0u8; 4096];
        let poll = self.settings.poll.clone();
        let mut next_poll = poll.as_ref().map(|_| Instant::now());
        let mut reply_due: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = io.cancelled() => return Ended::Stopped,
                Some(write) = io.next_write() => {
                    let _ = write.reply.send(Err(ComponentError::config(format!(
                        "ascii source `{}` is read-only", self.name
                    ))));
                }
                read = rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return Ended::Lost("closed by the device".into()),
                        Ok(n) => n,
                        Err(e) => return Ended::Lost(format!("read: {e}")),
                    };
                    backoff.reset();
                    let fed = lines.feed(buf.get(..n).unwrap_or_default(), std::time::Instant::now());
                    if fed.answered {
                        reply_due = None;
                    }
                    for readings in fed.lines {
                        if !io.emit(Timestamp::now(), readings).await {
                            return Ended::Stopped;
                        }
                    }
                }
                () = until(next_poll) => {
                    let Some(poll) = &poll else { continue };
                    let sent = tokio::time::timeout(poll.timeout, async {
                        wr.write_all(&poll.command).await?;
                        wr.flush().await
                    })
                    .await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Lost(format!("write: {e}")),
                        Err(_) => return Ended::Lost(format!("the poll command could not be sent within {:?}", poll.timeout)),
                    }
                    let now = Instant::now();
                    reply_due.get_or_insert(now + poll.timeout);
                    next_poll = next_poll.map(|mut due| {
                        // Skip missed ticks rather than bursting to catch up.
                        due += poll.period;
                        while due <= now {
                            due += poll.period;
                        }
                        due
                    });
                }
                () = until(reply_due) => {
                    reply_due = None;
                    let timeout = poll.as_ref().map(|p| p.timeout).unwrap_or(Duration::ZERO);
                    lines.report(ErrorKind::PollTimeout, std::time::Instant::now(), || {
                        format!("no answer to the poll command within {timeout:?}; the values turn bad (timeout)")
                    });
                    if !io.emit(Timestamp::now(), self.all(Quality::Bad(BadReason::Timeout))).await {
                        return Ended::Stopped;
                    }
                }
            }
        }
    }
}

impl Source for AsciiSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        self.run_inner(io).boxed()
    }
}
