//! One session with a controller: TCP, RegisterSession, then a class 3 connection (Large
//! Forward Open, else small Forward Open) or, when the controller refuses both and the
//! settings allow it, unconnected messages (SendRRData, through Unconnected Send when a
//! route is set).
//!
//! Transport failures ([`CallError`]) are kept apart from the controller's answers: a
//! call returns the Message Router reply bytes whatever its CIP status says; the caller
//! reads the status. Every wait is bounded by the timeout; a reply whose sender context
//! (unconnected) or sequence count (connected) is not the request's is a late answer to
//! an earlier request and is skipped; a wrong session handle, an encapsulation error, or
//! a frame cut off by the timeout means the stream cannot be trusted: reconnect.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::cip::{self, ConnectionIds};
use crate::config::{EnipSettings, Messaging, SMALL_CONNECTION_SIZE};
use crate::frame::{self, Encap, FrameError};

/// A failed exchange; the controller's own error answers are not these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection is gone (or was never made).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No answer in time; the connection may still be good.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer sent something that breaks the protocol; the stream cannot be trusted.
    #[error("{0}")]
    Protocol(String),
    /// The peer answered this request with an encapsulation error (a whole, matching
    /// frame, so the session is fine).
    #[error("{0}")]
    Refused(String),
}

impl CallError {
    /// Whether the connection must be dropped and opened again.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, CallError::Timeout(_) | CallError::Refused(_))
    }

    pub fn into_io(self) -> io::Error {
        match self {
            CallError::Io(e) => e,
            CallError::Timeout(t) => {
                io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {t:?}"))
            }
            CallError::Protocol(m) | CallError::Refused(m) => io::Error::new(io::ErrorKind::InvalidData, m),
        }
    }
}

/// How the session carries requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Connected {
        /// The target's id for our packets.
        o_t: u32,
        /// Ours for its replies.
        t_o: u32,
        large: bool,
    },
    Unconnected,
}

/// Our vendor id in Forward Opens: 0xFFFF is not assigned by ODVA to anyone.
const VENDOR: u16 = 0xFFFF;
/// Connection serials must be unique per originator: one counter per process.
static SERIAL: AtomicU32 = AtomicU32::new(0);

fn next_serial() -> u32 {
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    seed.wrapping_add(SERIAL.fetch_add(1, Ordering::Relaxed))
}

/// One open session.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    session: u32,
    timeout: Duration,
    mode: Mode,
    /// The CIP message size this session carries (the negotiated connection size).
    size: u16,
    route: Vec<u8>,
    context: u64,
    sequence: u16,
    ids: Option<ConnectionIds>,
    /// Replies skipped because they answered an earlier request.
    pub stale: u64,
    /// Why Forward Open was refused, when the session fell back to unconnected messages.
    pub refused: Option<String>,
}

impl Connection {
    /// Connects, registers a session and opens the connection the settings ask for.
    pub async fn open(settings: &EnipSettings) -> Result<Connection, CallError> {
        let deadline = Instant::now() + settings.timeout;
        let address = (settings.endpoint.host.as_str(), settings.endpoint.port);
        let stream = timeout_at(deadline, TcpStream::connect(address))
            .await
            .map_err(|_| CallError::Timeout(settings.timeout))??;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            buf: Vec::with_capacity(8192),
            session: 0,
            timeout: settings.timeout,
            mode: Mode::Unconnected,
            size: settings.connection_size.min(SMALL_CONNECTION_SIZE),
            route: settings.route.clone(),
            context: 0,
            sequence: 0,
            ids: None,
            stale: 0,
            refused: None,
        };
        conn.register().await?;
        if settings.messaging == Messaging::Unconnected {
            return Ok(conn);
        }
        let rpi = settings
            .period
            .max(Duration::from_secs(2))
            .min(Duration::from_secs(3600));
        let mut reasons = Vec::new();
        let mut sizes = Vec::new();
        if settings.connection_size > 511 {
            sizes.push((settings.connection_size, true));
        }
        sizes.push((settings.connection_size.min(SMALL_CONNECTION_SIZE), false));
        for (size, large) in sizes {
            let serial = next_serial();
            let ids = ConnectionIds {
                t_o: serial ^ 0x5A5A_0000,
                serial: serial as u16,
                vendor: VENDOR,
                originator_serial: 0x4250_0000 | (serial >> 16),
            };
            let request = cip::forward_open(ids, size, large, &conn.route, rpi.as_micros() as u32);
            let reply = match conn.unconnected(&request, false).await {
                Ok(r) => r,
                Err(CallError::Timeout(_)) => {
                    reasons.push(format!("{} got no answer", open_name(large)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let decoded = cip::decode_reply(&reply)
                .map_err(|e| CallError::Protocol(format!("Forward Open reply: {e}")))?;
            if !decoded.ok() {
                reasons.push(format!("{} refused: {}", open_name(large), decoded.describe()));
                continue;
            }
            let opened = cip::decode_forward_open(decoded.data)
                .map_err(|e| CallError::Protocol(format!("Forward Open reply: {e}")))?;
            conn.mode = Mode::Connected {
                o_t: opened.o_t,
                t_o: opened.t_o,
                large,
            };
            conn.size = size;
            conn.ids = Some(ids);
            return Ok(conn);
        }
        let why = reasons.join("; ");
        if settings.messaging == Messaging::Connected {
            return Err(CallError::Protocol(format!(
                "the controller opens no connection ({why}) and messaging = \"connected\""
            )));
        }
        conn.refused = Some(why);
        Ok(conn)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The largest CIP message (request or reply) this session carries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Bytes the transport adds around a request (Unconnected Send, when routed).
    pub fn request_overhead(&self) -> usize {
        match self.mode {
            Mode::Connected { .. } => 0,
            Mode::Unconnected if self.route.is_empty() => 0,
            Mode::Unconnected => 2 + 4 + 4 + 1 + 2 + self.route.len(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn register(&mut self) -> Result<(), CallError> {
        let frame = Encap {
            command: frame::REGISTER_SESSION,
            session: 0,
            status: 0,
            context: [0; 8],
            data: vec![1, 0, 0, 0],
        };
        let deadline = Instant::now() + self.timeout;
        self.send(&frame, deadline).await?;
        let reply = self.receive(deadline).await?;
        if reply.command != frame::REGISTER_SESSION {
            return Err(CallError::Protocol(format!(
                "RegisterSession answered by command 0x{:04X}",
                reply.command
            )));
        }
        if reply.status != 0 {
            return Err(CallError::Protocol(format!(
                "RegisterSession refused: {} (0x{:04X})",
                frame::encap_status_name(reply.status),
                reply.status
            )));
        }
        if reply.session == 0 {
            return Err(CallError::Protocol(
                "RegisterSession gave session handle 0".into(),
            ));
        }
        self.session = reply.session;
        Ok(())
    }

    async fn send(&mut self, frame: &Encap, deadline: Instant) -> Result<(), CallError> {
        let bytes = frame.encode();
        timeout_at(deadline, self.stream.write_all(&bytes))
            .await
            .map_err(|_| CallError::Timeout(self.timeout))??;
        Ok(())
    }

    /// The next whole frame, by `deadline`.
    async fn receive(&mut self, deadline: Instant) -> Result<Encap, CallError> {
        loop {
            match Encap::decode(&self.buf) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(CallError::Protocol(e.to_string())),
            }
            let mut chunk = [0u8; 8192];
            let read = timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_) if self.buf.is_empty() => return Err(CallError::Timeout(self.timeout)),
                Err(_) => {
                    return Err(CallError::Protocol(format!(
                        "a frame stopped after {} bytes (header announces {} data bytes)",
                        self.buf.len(),
                        Encap::announced(&self.buf).unwrap_or(0)
                    )));
                }
                Ok(Ok(0)) => {
                    return Err(CallError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the controller closed the connection",
                    )));
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Ok(Err(e)) => return Err(CallError::Io(e)),
            }
        }
    }

    /// Checks a reply frame's session and command; `Ok(None)` for a frame to skip. An
    /// error status is the caller's to judge (once it knows the reply is its own).
    fn accept<'f>(&mut self, frame: &'f Encap, command: u16) -> Result<Option<&'f [u8]>, CallError> {
        if frame.command == frame::NOP {
            return Ok(None);
        }
        if frame.session != self.session {
            return Err(CallError::Protocol(format!(
                "reply for session 0x{:08X}, ours is 0x{:08X}",
                frame.session, self.session
            )));
        }
        if frame.command != command {
            return Err(CallError::Protocol(format!(
                "command 0x{:04X} in reply to 0x{command:04X}",
                frame.command
            )));
        }
        Ok(Some(&frame.data))
    }

    /// Sends a Message Router request and returns the reply's bytes (whatever its status).
    pub async fn call(&mut self, message: &[u8]) -> Result<Vec<u8>, CallError> {
        match self.mode {
            Mode::Connected { o_t, t_o, .. } => self.connected(message, o_t, t_o).await,
            Mode::Unconnected => self.unconnected(message, true).await,
        }
    }

    /// [`Connection::call`], again after a timeout, up to `retries` more times.
    pub async fn call_with_retries(&mut self, message: &[u8], retries: u32) -> Result<Vec<u8>, CallError> {
        let mut attempt = 0;
        loop {
            match self.call(message).await {
                Err(CallError::Timeout(t)) if attempt < retries => {
                    attempt += 1;
                    tracing::debug!("no answer within {t:?}; attempt {}", attempt + 1);
                }
                other => return other,
            }
        }
    }

    async fn unconnected(&mut self, message: &[u8], routed: bool) -> Result<Vec<u8>, CallError> {
        self.context = self.context.wrapping_add(1);
        let context = self.context.to_le_bytes();
        let ticks = self.timeout.as_secs().clamp(1, 255) as u8;
        let wrapped;
        let body: &[u8] = if routed && !self.route.is_empty() {
            wrapped = cip::unconnected_send(message, &self.route, ticks);
            &wrapped
        } else {
            message
        };
        let secs = self.timeout.as_secs().clamp(1, 0xFFFF) as u16;
        let frame = Encap {
            command: frame::SEND_RR_DATA,
            session: self.session,
            status: 0,
            context,
            data: frame::encode_cpf(
                secs,
                &[
                    (frame::ITEM_NULL_ADDRESS, &[]),
                    (frame::ITEM_UNCONNECTED_DATA, body),
                ],
            ),
        };
        let deadline = Instant::now() + self.timeout;
        self.send(&frame, deadline).await?;
        loop {
            let reply = self.receive(deadline).await?;
            let Some(data) = self.accept(&reply, frame::SEND_RR_DATA)? else {
                continue;
            };
            if reply.context != context {
                self.stale += 1;
                continue;
            }
            refused(&reply)?;
            let items = frame::decode_cpf(data).map_err(protocol)?;
            let (_, message) = frame::message_item(&items).map_err(protocol)?;
            return Ok(message.to_vec());
        }
    }

    async fn connected(&mut self, message: &[u8], o_t: u32, t_o: u32) -> Result<Vec<u8>, CallError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut data = Vec::with_capacity(2 + message.len());
        data.extend_from_slice(&sequence.to_le_bytes());
        data.extend_from_slice(message);
        let address = o_t.to_le_bytes();
        let frame = Encap {
            command: frame::SEND_UNIT_DATA,
            session: self.session,
            status: 0,
            context: [0; 8],
            data: frame::encode_cpf(
                0,
                &[
                    (frame::ITEM_CONNECTED_ADDRESS, &address),
                    (frame::ITEM_CONNECTED_DATA, &data),
                ],
            ),
        };
        let deadline = Instant::now() + self.timeout;
        self.send(&frame, deadline).await?;
        loop {
            let reply = self.receive(deadline).await?;
            let Some(body) = self.accept(&reply, frame::SEND_UNIT_DATA)? else {
                continue;
            };
            // A connected error reply has no items to match it by: it answers this request.
            refused(&reply)?;
            let items = frame::decode_cpf(body).map_err(protocol)?;
            let (connection, message) = frame::message_item(&items).map_err(protocol)?;
            // Replies carry the T->O id; some targets (cpppo) send the O->T id back.
            if connection.is_some_and(|c| c != t_o && c != o_t) {
                return Err(CallError::Protocol(format!(
                    "reply on connection 0x{:08X}, ours is 0x{t_o:08X}",
                    connection.unwrap_or_default()
                )));
            }
            let (seq, rest) = message
                .split_at_checked(2)
                .ok_or_else(|| CallError::Protocol("connected data item without a sequence count".into()))?;
            if seq != sequence.to_le_bytes() {
                self.stale += 1;
                continue;
            }
            return Ok(rest.to_vec());
        }
    }

    /// Closes the connection (Forward Close) and the session, best effort and briefly.
    pub async fn close(mut self) {
        self.timeout = self.timeout.min(Duration::from_millis(500));
        if let (Mode::Connected { .. }, Some(ids)) = (self.mode, self.ids) {
            let request = cip::forward_close(ids, &self.route);
            let _ = self.unconnected(&request, false).await;
        }
        let frame = Encap {
            command: frame::UNREGISTER_SESSION,
            session: self.session,
            status: 0,
            context: [0; 8],
            data: Vec::new(),
        };
        let _ = self.send(&frame, Instant::now() + self.timeout).await;
        let _ = self.stream.shutdown().await;
    }
}

fn open_name(large: bool) -> &'static str {
    if large {
        "Large Forward Open"
    } else {
        "Forward Open"
    }
}

/// An encapsulation error status in a reply to our request.
fn refused(reply: &Encap) -> Result<(), CallError> {
    if reply.status == 0 {
        return Ok(());
    }
    let mut text = format!(
        "encapsulation error: {} (0x{:04X})",
        frame::encap_status_name(reply.status),
        reply.status
    );
    // cpppo reports a CIP general status here.
    if let Ok(cip_status) = u8::try_from(reply.status)
        && frame::encap_status_name(reply.status) == "unknown encapsulation status"
    {
        text.push_str(&format!("; as a CIP status: {}", cip::status_name(cip_status)));
    }
    Err(CallError::Refused(text))
}

fn protocol(e: FrameError) -> CallError {
    CallError::Protocol(e.to_string())
}
