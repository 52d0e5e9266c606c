//! An EtherNet/IP controller playing the palletizer at the end of the packaging area, for
//! the demo and benchmarks (conformance is tested against cpppo, not against this).
//!
//! Tags (Logix style; `Palletizer` is a UDT tag, read member by member):
//!
//! | tag                          | type      | meaning                                              |
//! |------------------------------|-----------|------------------------------------------------------|
//! | Palletizer.State             | DINT      | 0 stopped, 1 idle, 2 running, 3 fault (20 s steps)   |
//! | Palletizer.PalletCount       | DINT      | pallets completed                                     |
//! | Palletizer.LayerCount        | INT       | layers on the pallet being built                      |
//! | Palletizer.LayersPerPallet   | INT       | layers per pallet, writable (default 5)              |
//! | Palletizer.CasesPerMinute    | REAL      | cases placed per minute while running                 |
//! | Palletizer.FaultCode         | DINT      | 0, or the fault while in state 3 (e.g. 112 layer jam) |
//! | Palletizer.Recipe            | STRING    | the pallet pattern, e.g. `MILK-1L-6x4`               |
//! | Palletizer.Lane[0..3].Cases  | DINT      | cases through each infeed lane                        |
//! | Bench                        | DINT[10000] | load-test bank: Bench[i] = i + tick (100 ms ticks) |
//! | Scratch                      | REAL[10]  | writable                                              |
//!
//! It accepts Large and small Forward Open (connection size up to 4002), unconnected
//! messages with or without Unconnected Send, Multiple Service Packets and the Symbol
//! object's tag list (Palletizer, Bench, Scratch). [`SimOptions`] can make it refuse
//! Forward Open, to exercise the unconnected fallback.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backplane_model::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::cip;
use crate::config::MAX_CONNECTION_SIZE;
use crate::frame::{self, Encap};
use crate::server::{self, Entry, Listed, TagTable};
use crate::types::CipType;

const BENCH: usize = 10_000;
const LANES: usize = 4;
const TICK: Duration = Duration::from_millis(100);
const STATE_STEP: Duration = Duration::from_secs(20);
const STATES: [i64; 9] = [1, 2, 2, 2, 2, 3, 1, 2, 0];
/// Sessions served at once; more wait for one to end.
const MAX_SESSIONS: usize = 32;
/// The template id the tag list gives the Palletizer UDT.
const PALLETIZER_TEMPLATE: u16 = 0x0F01;

/// How the simulated controller behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Answer Forward Open with "out of connections" (general status 0x01, 0x0113).
    pub refuse_forward_open: bool,
    /// Answer Multiple Service Packets with "service not supported" (0x08).
    pub refuse_multiple_service: bool,
}

#[derive(Debug)]
struct Palletizer {
    table: TagTable,
    tick: u64,
    cases: f64,
    lanes: [i64; LANES],
    pallets: i64,
    layers: i64,
}

fn entry(ty: CipType, values: Vec<Value>, writable: bool) -> Entry {
    Entry { ty, values, writable }
}

impl Palletizer {
    fn new() -> Palletizer {
        let mut t = TagTable::new(usize::from(MAX_CONNECTION_SIZE));
        let p = "Palletizer.";
        for (name, ty, value, writable) in [
            ("State", CipType::Dint, Value::Int(1), false),
            ("PalletCount", CipType::Dint, Value::Int(0), false),
            ("LayerCount", CipType::Int, Value::Int(0), false),
            ("LayersPerPallet", CipType::Int, Value::Int(5), true),
            ("CasesPerMinute", CipType::Real, Value::Float(0.0), false),
            ("FaultCode", CipType::Dint, Value::Int(0), false),
            (
                "Recipe",
                CipType::LogixString,
                Value::String("MILK-1L-6x4".into()),
                true,
            ),
        ] {
            t.insert(&format!("{p}{name}"), entry(ty, vec![value], writable));
        }
        for lane in 0..LANES {
            t.insert(
                &format!("{p}Lane[{lane}].Cases"),
                entry(CipType::Dint, vec![Value::Int(0)], false),
            );
        }
        t.insert(
            "Bench",
            entry(CipType::Dint, (0..BENCH as i64).map(Value::Int).collect(), false),
        );
        t.insert("Scratch", entry(CipType::Real, vec![Value::Float(0.0); 10], true));
        t.listed = vec![
            Listed {
                name: "Palletizer".into(),
                type_word: 0x8000 | PALLETIZER_TEMPLATE,
                dims: [0; 3],
            },
            Listed {
                name: "Bench".into(),
                type_word: 0x2000 | CipType::Dint.code(),
                dims: [BENCH as u32, 0, 0],
            },
            Listed {
                name: "Scratch".into(),
                type_word: 0x2000 | CipType::Real.code(),
                dims: [10, 0, 0],
            },
            Listed {
                name: "__SystemClock".into(),
                type_word: 0x1000 | CipType::Lint.code(),
                dims: [0; 3],
            },
        ];
        let mut p = Palletizer {
            table: t,
            tick: 0,
            cases: 0.0,
            lanes: [0; LANES],
            pallets: 1200,
            layers: 0,
        };
        p.step();
        p
    }

    fn step(&mut self) {
        let t = self.tick as f64 * TICK.as_secs_f64();
        let state = STATES
            .get((t / STATE_STEP.as_secs_f64()) as usize % STATES.len())
            .copied()
            .unwrap_or(0);
        let running = state == 2;
        let rate = if running {
            60.0 + 4.0 * (std::f64::consts::TAU * t / 30.0).sin()
        } else {
            0.0
        };
        let per_layer = 12.0;
        let layers_per_pallet = self
            .table
            .get("Palletizer.LayersPerPallet")
            .and_then(|e| e.values.first())
            .and_then(Value::as_i64)
            .unwrap_or(5)
            .max(1);
        self.cases += rate / 60.0 * TICK.as_secs_f64();
        while self.cases >= per_layer {
            self.cases -= per_layer;
            self.layers += 1;
            if self.layers >= layers_per_pallet {
                self.layers = 0;
                self.pallets += 1;
            }
        }
        if running {
            let lane = (self.tick as usize) % LANES;
            if let Some(l) = self.lanes.get_mut(lane) {
                *l += 1;
            }
        }
        let t_ = &mut self.table;
        t_.set("Palletizer.State", Value::Int(state));
        t_.set("Palletizer.PalletCount", Value::Int(self.pallets));
        t_.set("Palletizer.LayerCount", Value::Int(self.layers));
        t_.set("Palletizer.CasesPerMinute", Value::Float(f64::from(rate as f32)));
        t_.set(
            "Palletizer.FaultCode",
            Value::Int(if state == 3 { 112 } else { 0 }),
        );
        for (i, cases) in self.lanes.iter().enumerate() {
            t_.set(&format!("Palletizer.Lane[{i}].Cases"), Value::Int(*cases));
        }
        if let Some(bench) = t_.get_mut("Bench") {
            for (i, v) in bench.values.iter_mut().enumerate() {
                *v = Value::Int(((i as u64 + self.tick) % 0x7FFF_FFFF) as i64);
            }
        }
        self.tick += 1;
    }
}

type Shared = Arc<Mutex<Palletizer>>;

fn lock(p: &Shared) -> MutexGuard<'_, Palletizer> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

static SESSIONS: AtomicU32 = AtomicU32::new(0x1000);

/// Starts the palletizer on `listen` (port 0: any free port); returns where it listens.
pub async fn spawn_palletizer(listen: SocketAddr) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    spawn_with(listen, SimOptions::default()).await
}

/// [`spawn_palletizer`] with options.
pub async fn spawn_with(listen: SocketAddr, options: SimOptions) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let mut palletizer = Palletizer::new();
    palletizer.table.no_multiple_service = options.refuse_multiple_service;
    let shared: Shared = Arc::new(Mutex::new(palletizer));
    let ticker = shared.clone();
    let task = tokio::spawn(async move {
        let clock = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                lock(&ticker).step();
            }
        });
        let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
        let mut handlers = tokio::task::JoinSet::new();
        loop {
            let Ok(permit) = sessions.clone().acquire_owned().await else {
                break;
            };
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            handlers.spawn(async move {
                let _ = serve(stream, shared, options).await;
                drop(permit);
            });
            while handlers.try_join_next().is_some() {}
        }
        clock.abort();
    });
    Ok((address, task))
}

/// One client's session until it closes or breaks the protocol.
async fn serve(mut stream: TcpStream, shared: Shared, options: SimOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut session = 0u32;
    // Our id for the client's connected packets, and the client's id for ours.
    let mut connection: Option<(u32, u32)> = None;
    let mut chunk = [0u8; 8192];
    loop {
        let frame = loop {
            match Encap::decode(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    break frame;
                }
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        };
        let mut reply = Encap {
            command: frame.command,
            session: frame.session,
            status: 0,
            context: frame.context,
            data: Vec::new(),
        };
        match frame.command {
            frame::REGISTER_SESSION => {
                session = SESSIONS.fetch_add(1, Ordering::Relaxed);
                reply.session = session;
                reply.data = frame.data.clone();
            }
            frame::UNREGISTER_SESSION => return Ok(()),
            _ if frame.session != session || session == 0 => reply.status = 0x64,
            frame::SEND_RR_DATA => {
                let items = frame::decode_cpf(&frame.data);
                let message = items
                    .as_ref()
                    .ok()
                    .and_then(|i| frame::message_item(i).ok())
                    .map(|(_, m)| m);
                match message {
                    None => reply.status = 0x03,
                    Some(message) => {
                        let answer = match cip::decode_request(message) {
                            Ok(r) if matches!(r.service, cip::FORWARD_OPEN | cip::LARGE_FORWARD_OPEN) => {
                                open(&r, options, &mut connection)
                            }
                            Ok(r) if r.service == cip::FORWARD_CLOSE => {
                                connection = None;
                                cip::encode_reply(
                                    cip::FORWARD_CLOSE,
                                    0,
                                    &[],
                                    r.data.get(2..10).unwrap_or_default(),
                                )
                            }
                            _ => lock(&shared).table.handle(message),
                        };
                        reply.data = frame::encode_cpf(
                            0,
                            &[
                                (frame::ITEM_NULL_ADDRESS, &[]),
                                (frame::ITEM_UNCONNECTED_DATA, &answer),
                            ],
                        );
                    }
                }
            }
            frame::SEND_UNIT_DATA => {
                let items = frame::decode_cpf(&frame.data);
                let message = items.as_ref().ok().and_then(|i| frame::message_item(i).ok());
                match (message, connection) {
                    (Some((Some(id), data)), Some((ours, theirs))) if id == ours && data.len() >= 2 => {
                        let (seq, request) = data.split_at(2);
                        let answer = lock(&shared).table.handle(request);
                        let mut body = seq.to_vec();
                        body.extend_from_slice(&answer);
                        reply.data = frame::encode_cpf(
                            0,
                            &[
                                (frame::ITEM_CONNECTED_ADDRESS, &theirs.to_le_bytes()),
                                (frame::ITEM_CONNECTED_DATA, &body),
                            ],
                        );
                    }
                    _ => reply.status = 0x03,
                }
            }
            _ => reply.status = 0x01,
        }
        stream.write_all(&reply.encode()).await?;
    }
}

fn open(request: &cip::Request<'_>, options: SimOptions, connection: &mut Option<(u32, u32)>) -> Vec<u8> {
    let service = request.service;
    if options.refuse_forward_open {
        return cip::encode_reply(service, cip::CONNECTION_FAILURE, &[0x0113], &[]);
    }
    match server::decode_forward_open_request(request.data, service == cip::LARGE_FORWARD_OPEN) {
        Ok(open) if open.size <= MAX_CONNECTION_SIZE => {
            let ours = SESSIONS.fetch_add(1, Ordering::Relaxed) ^ 0x00C0_0000;
            *connection = Some((ours, open.t_o));
            cip::encode_reply(
                service,
                0,
                &[],
                &server::forward_open_reply(&open, ours, 2_000_000),
            )
        }
        Ok(_) => cip::encode_reply(service, cip::CONNECTION_FAILURE, &[0x0109], &[]),
        Err(_) => cip::encode_reply(service, cip::NOT_ENOUGH_DATA, &[], &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_palletizer_builds_pallets_while_running() {
        let mut p = Palletizer::new();
        // 5 minutes of simulated time.
        for _ in 0..3000 {
            p.step();
        }
        let pallets = p
            .table
            .get("Palletizer.PalletCount")
            .and_then(|e| e.values.first().cloned());
        assert!(matches!(pallets, Some(Value::Int(n)) if n > 1200), "{pallets:?}");
        assert_eq!(
            p.table.get("Palletizer.Recipe").map(|e| e.ty),
            Some(CipType::LogixString)
        );
    }
}
