//! A Modbus TCP device playing filler line 1 of vendor A, for demos and benchmarks
//! (conformance is tested against pymodbus, not against this).
//!
//! Register map (protocol addresses, i.e. `address_base = 0`; any unit id answers):
//!
//! | address        | meaning                                                        |
//! |----------------|----------------------------------------------------------------|
//! | hr:100         | state: 0 stopped, 1 idle, 2 running, 3 fault (15 s steps)      |
//! | hr:101         | speed ×10 bottle/min (≈ the setpoint while running, else 0)    |
//! | hr:102-103     | good count, u32, CDAB (low word first), starts near rollover  |
//! | hr:104         | reject count, u16, rolls over 65535 → 0                       |
//! | hr:106         | product temperature, tenths of °F, i16 (≈ 39.5 °F)            |
//! | hr:110         | speed setpoint ×10 bottle/min, writable (default 4000)         |
//! | hr:111-119     | writable scratch registers                                     |
//! | hr:0-199       | readable; unused registers read 0                              |
//! | coil:0         | stop request, writable: true holds the filler stopped          |
//! | coil:0-15      | readable and writable                                          |
//! | di:0, di:1     | running, fault                                                 |
//! | ir:0-9999      | load-test bank: ir:N = (N + tick) mod 65536, tick every 100 ms |
//!
//! Requests pass [`crate::frame::check_tcp_request`] before tokio-modbus' server codec
//! sees them: it panics on some malformed frames (see that function).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::frame;

const HOLDING: usize = 200;
const BITS: usize = 16;
const LOAD_BANK: usize = 10_000;
const STATES: [u16; 11] = [1, 2, 2, 2, 2, 2, 3, 1, 2, 2, 0];
const STATE_STEP: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Filler {
    holding: [u16; HOLDING],
    coils: [bool; BITS],
    inputs: [bool; BITS],
    tick: u64,
    good: u32,
    /// Bottles filled but not yet counted (fractions per tick).
    pending: f64,
    since_reject: u32,
}

impl Filler {
    fn new() -> Filler {
        let mut f = Filler {
            holding: [0; HOLDING],
            coils: [false; BITS],
            inputs: [false; BITS],
            tick: 0,
            good: 4_294_960_000,
            pending: 0.0,
            since_reject: 0,
        };
        f.holding[104] = 65_500;
        f.holding[110] = 4000;
        f.step();
        f
    }

    /// Advances the machine by one tick.
    fn step(&mut self) {
        let t = self.tick as f64 * TICK.as_secs_f64();
        let index = (t / STATE_STEP.as_secs_f64()) as usize % STATES.len();
        let state = if self.coils[0] { 0 } else { STATES[index] };
        let running = state == 2;
        let setpoint = f64::from(self.holding[110]);
        let speed = if running {
            (setpoint + 60.0 * (std::f64::consts::TAU * t / 45.0).sin()).clamp(0.0, 65_535.0)
        } else {
            0.0
        };
        // speed is tenths of bottles per minute.
        self.pending += speed / 10.0 / 60.0 * TICK.as_secs_f64();
        let whole = self.pending.floor();
        self.pending -= whole;
        let filled = whole as u32;
        self.good = self.good.wrapping_add(filled);
        self.since_reject += filled;
        if self.since_reject >= 60 {
            self.since_reject -= 60;
            self.holding[104] = self.holding[104].wrapping_add(1);
        }
        let temperature = 395.0
            + 8.0 * (std::f64::consts::TAU * t / 120.0).sin()
            + 2.0 * (std::f64::consts::TAU * t / 7.0).sin();
        self.holding[100] = state;
        self.holding[101] = speed.round() as u16;
        // CDAB: the low word first.
        self.holding[102] = self.good as u16;
        self.holding[103] = (self.good >> 16) as u16;
        self.holding[106] = (temperature.round() as i16) as u16;
        self.inputs[0] = running;
        self.inputs[1] = state == 3;
        self.tick += 1;
    }

    fn load_bank(&self, address: usize) -> u16 {
        (address as u64).wrapping_add(self.tick) as u16
    }
}

fn range(start: u16, count: u16, len: usize, max: u16) -> Result<std::ops::Range<usize>, ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let start = usize::from(start);
    let end = start + usize::from(count);
    if end > len {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(start..end)
}

fn writable(start: u16, count: usize) -> bool {
    let start = usize::from(start);
    start >= 110 && start + count <= 120
}

#[derive(Clone, Debug)]
struct Service {
    state: Arc<Mutex<Filler>>,
}

fn lock(state: &Mutex<Filler>) -> MutexGuard<'_, Filler> {
    // A panic elsewhere cannot leave the registers inconsistent: keep serving.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Service {
    fn answer(&self, request: Request<'static>) -> Result<Response, ExceptionCode> {
        let mut f = lock(&self.state);
        match request {
            Request::ReadHoldingRegisters(a, n) => Ok(Response::ReadHoldingRegisters(
                f.holding[range(a, n, HOLDING, 125)?].to_vec(),
            )),
            Request::ReadInputRegisters(a, n) => {
                let r = range(a, n, LOAD_BANK, 125)?;
                Ok(Response::ReadInputRegisters(r.map(|i| f.load_bank(i)).collect()))
            }
            Request::ReadCoils(a, n) => Ok(Response::ReadCoils(f.coils[range(a, n, BITS, 2000)?].to_vec())),
            Request::ReadDiscreteInputs(a, n) => Ok(Response::ReadDiscreteInputs(
                f.inputs[range(a, n, BITS, 2000)?].to_vec(),
            )),
            Request::WriteSingleRegister(a, v) if writable(a, 1) => {
                f.holding[usize::from(a)] = v;
                Ok(Response::WriteSingleRegister(a, v))
            }
            Request::WriteMultipleRegisters(a, values) if writable(a, values.len()) => {
                let start = usize::from(a);
                f.holding[start..start + values.len()].copy_from_slice(&values);
                Ok(Response::WriteMultipleRegisters(a, values.len() as u16))
            }
            Request::WriteSingleRegister(..) | Request::WriteMultipleRegisters(..) => {
                Err(ExceptionCode::IllegalDataAddress)
            }
            Request::WriteSingleCoil(a, v) => {
                let slot = f
                    .coils
                    .get_mut(usize::from(a))
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                *slot = v;
                Ok(Response::WriteSingleCoil(a, v))
            }
            Request::WriteMultipleCoils(a, values) => {
                let r = range(a, values.len() as u16, BITS, 1968)?;
                f.coils[r].copy_from_slice(&values);
                Ok(Response::WriteMultipleCoils(a, values.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: SlaveRequest<'static>) -> Self::Future {
        std::future::ready(self.answer(req.request))
    }
}

/// A TCP stream that hands the server only whole, checked request frames; a malformed one
/// ends the connection with an error instead of reaching the codec.
#[derive(Debug)]
pub struct GuardedStream<S> {
    inner: S,
    pending: Vec<u8>,
    checked: Vec<u8>,
    position: usize,
}

impl<S> GuardedStream<S> {
    pub fn new(inner: S) -> GuardedStream<S> {
        GuardedStream {
            inner,
            pending: Vec::new(),
            checked: Vec::new(),
            position: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.position < this.checked.len() {
                let available = &this.checked[this.position..];
                let n = available.len().min(buf.remaining());
                buf.put_slice(&available[..n]);
                this.position += n;
                return Poll::Ready(Ok(()));
            }
            this.checked.clear();
            this.position = 0;
            match frame::check_tcp_request(&this.pending) {
                Ok(Some(len)) => {
                    this.checked.extend(this.pending.drain(..len));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("simulator: closing a connection after a malformed request: {e}");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())));
                }
            }
            let mut chunk = [0u8; 512];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream; a partial frame left behind is dropped.
                return Poll::Ready(Ok(()));
            }
            this.pending.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Starts the filler simulator on `addr` (port 0 picks a free port) and returns the
/// address it listens on. Aborting the handle stops it and closes its connections.
pub async fn spawn_filler_simulator(addr: SocketAddr) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = Arc::new(Mutex::new(Filler::new()));
    let ticker_state = state.clone();
    let handle = tokio::spawn(async move {
        let ticker = async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            interval.tick().await;
            loop {
                interval.tick().await;
                lock(&ticker_state).step();
            }
        };
        let server = Server::new(listener);
        let on_connected = move |stream: TcpStream, _peer: SocketAddr| {
            let service = Service { state: state.clone() };
            let _ = stream.set_nodelay(true);
            async move { Ok(Some((service, GuardedStream::new(stream)))) }
        };
        let on_error = |e: io::Error| tracing::debug!("simulator connection ended: {e}");
        tokio::select! {
            result = server.serve(&on_connected, on_error) => {
                if let Err(e) = result {
                    tracing::warn!("filler simulator stopped: {e}");
                }
            }
            () = ticker => {}
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counters_advance_and_roll_over_while_running() {
        let mut f = Filler::new();
        let good = |f: &Filler| u32::from(f.holding[102]) | (u32::from(f.holding[103]) << 16);
        let start = good(&f);
        // 15 s idle, then running; an hour of ticks covers the u32 and u16 rollovers.
        let mut wrapped = false;
        let mut rejects_wrapped = false;
        let mut last = start;
        let mut last_rejects = f.holding[104];
        for _ in 0..36_000 {
            f.step();
            let now = good(&f);
            wrapped |= now < last;
            rejects_wrapped |= f.holding[104] < last_rejects;
            last = now;
            last_rejects = f.holding[104];
            assert!((380..=410).contains(&(f.holding[106] as i16)));
            assert!(f.holding[100] <= 3);
        }
        assert!(wrapped, "the good counter should pass 2^32");
        assert!(rejects_wrapped, "the reject counter should pass 65535");
    }

    #[test]
    fn the_stop_coil_holds_the_filler_stopped() {
        let service = Service {
            state: Arc::new(Mutex::new(Filler::new())),
        };
        service.answer(Request::WriteSingleCoil(0, true)).unwrap();
        for _ in 0..300 {
            lock(&service.state).step();
        }
        let Ok(Response::ReadHoldingRegisters(regs)) = service.answer(Request::ReadHoldingRegisters(100, 2))
        else {
            panic!()
        };
        assert_eq!(regs, [0, 0]);
        assert_eq!(
            service.answer(Request::WriteSingleRegister(100, 1)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            service.answer(Request::ReadHoldingRegisters(190, 20)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            service.answer(Request::ReadHoldingRegisters(0, 126)),
            Err(ExceptionCode::IllegalDataValue)
        );
    }
}
