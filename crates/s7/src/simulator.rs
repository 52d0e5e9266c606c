//! An S7 CPU playing the dairy's milk reception PLC (`s7-silos`), for demos and benchmarks
//! (conformance is tested against python-snap7's server, not against this).
//!
//! Data blocks (non-optimized; any rack/slot and TSAP is accepted, PDU up to 960):
//!
//! | address          | meaning                                                      |
//! |------------------|--------------------------------------------------------------|
//! | DB1.DBW0:int     | silo 1 level, raw 0..27648 (random walk from 18000)          |
//! | DB1.DBD2:real    | silo 1 milk temperature, °C (random walk 2..6 from 3.8)      |
//! | DB1.DBD6:udint   | silo 1 lot number, from 2301, +1 every 5 minutes             |
//! | DB1.DBW10:int    | silo 2 level, raw, ramps 2000..26000 over 10 minutes         |
//! | DB1.DBD12:real   | silo 2 milk temperature, °C (random walk 2..6 from 4.1)      |
//! | DB1.DBD16:udint  | silo 2 lot number, from 5101, +1 every 5 minutes             |
//! | DB1.DBB20..63    | writable scratch bytes                                       |
//! | DB100.DBD(4n)    | load bank, n = 0..9999: DBD(4n) = n + tick (tick every 100 ms) |
//! | MB0..255         | markers, readable and writable                               |
//!
//! Other DBs answer "object does not exist" (0x0A), reads past a DB's end "address out of
//! range" (0x05), as a CPU does. At most 16 clients at once; frames over
//! [`frame::MAX_FRAME`] or not TPKT close the connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::address::Area;
use crate::frame::{self, ItemSpec, Job};

const SILOS_DB: u16 = 1;
const SILOS_BYTES: usize = 64;
const LOAD_DB: u16 = 100;
const LOAD_VALUES: usize = 10_000;
const MARKERS: usize = 256;
const MAX_CLIENTS: usize = 16;
const STEP: Duration = Duration::from_secs(1);
const LOT_EVERY: u64 = 300;
const LOAD_TICK: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Silos {
    memory: HashMap<(u8, u16), Vec<u8>>,
    seconds: u64,
    rng: u64,
    level1: f64,
    temp1: f64,
    temp2: f64,
}

impl Silos {
    fn new() -> Silos {
        let mut memory = HashMap::new();
        memory.insert((Area::Db(SILOS_DB).code(), SILOS_DB), vec![0; SILOS_BYTES]);
        memory.insert((Area::Marker.code(), 0), vec![0; MARKERS]);
        let mut s = Silos {
            memory,
            seconds: 0,
            rng: 11,
            level1: 18_000.0,
            temp1: 3.8,
            temp2: 4.1,
        };
        s.publish();
        s
    }

    /// A step of -1..=1 (xorshift; deterministic from the seed).
    fn step(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 2001) as f64 / 1000.0 - 1.0
    }

    fn advance(&mut self) {
        self.seconds += 1;
        let s = self.step();
        self.level1 = (self.level1 + 40.0 * s).clamp(0.0, 27_648.0);
        let s = self.step();
        self.temp1 = (self.temp1 + 0.02 * s).clamp(2.0, 6.0);
        let s = self.step();
        self.temp2 = (self.temp2 + 0.02 * s).clamp(2.0, 6.0);
        self.publish();
    }

    fn publish(&mut self) {
        let ramp = 2_000.0 + 24_000.0 * ((self.seconds % 600) as f64 / 600.0);
        let lots = (self.seconds / LOT_EVERY) as u32;
        let Some(db) = self.memory.get_mut(&(Area::Db(SILOS_DB).code(), SILOS_DB)) else {
            return;
        };
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = db.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0, &(self.level1.round() as i16).to_be_bytes());
        put(2, &(self.temp1 as f32).to_be_bytes());
        put(6, &(2301 + lots).to_be_bytes());
        put(10, &(ramp.round() as i16).to_be_bytes());
        put(12, &(self.temp2 as f32).to_be_bytes());
        put(16, &(5101 + lots).to_be_bytes());
    }

    fn read(&self, item: &ItemSpec, load_tick: u32) -> Result<Vec<u8>, u8> {
        let (start, len) = (item.start as usize, item.bytes());
        if item.area == Area::Db(LOAD_DB) {
            if start + len > LOAD_VALUES * 4 {
                return Err(0x05);
            }
            return Ok((start..start + len)
                .map(|b| ((b / 4) as u32).wrapping_add(load_tick).to_be_bytes()[b % 4])
                .collect());
        }
        let area = self
            .memory
            .get(&(item.area.code(), item.area.db()))
            .ok_or(0x0A_u8)?;
        area.get(start..start + len).map(<[u8]>::to_vec).ok_or(0x05)
    }

    fn write(&mut self, item: &ItemSpec, data: &[u8]) -> u8 {
        let Some(area) = self.memory.get_mut(&(item.area.code(), item.area.db())) else {
            return 0x0A;
        };
        let start = item.start as usize;
        match (item.bit, data) {
            (Some(bit), [value, ..]) => match area.get_mut(start) {
                Some(byte) => {
                    *byte = (*byte & !(1 << bit)) | ((value & 1) << bit);
                    frame::ITEM_OK
                }
                None => 0x05,
            },
            (Some(_), []) => 0x07,
            (None, _) => match area.get_mut(start..start + data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    frame::ITEM_OK
                }
                None => 0x05,
            },
        }
    }
}

/// Starts the simulator on `listen`; returns the bound address and the task serving it
/// (abort it to stop).
pub async fn spawn_silo_simulator(listen: SocketAddr) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let silos = Arc::new(Mutex::new(Silos::new()));
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let ticker = {
            let silos = silos.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(STEP);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    if let Ok(mut s) = silos.lock() {
                        s.advance();
                    }
                }
            })
        };
        let _ticker = AbortOnDrop(ticker);
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        let mut clients = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let silos = silos.clone();
            clients.spawn(async move {
                let _ = serve(stream, &silos, started).await;
                drop(permit);
            });
            while clients.try_join_next().is_some() {}
        }
    });
    Ok((address, task))
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve(mut stream: TcpStream, silos: &Mutex<Silos>, started: Instant) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut pdu_size = frame::MIN_PDU;
    let mut connected = false;
    loop {
        let len = loop {
            match frame::frame_len(&buf) {
                Ok(Some(len)) => break len,
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        };
        let rest = buf.split_off(len);
        let request = std::mem::replace(&mut buf, rest);
        if !connected {
            if !frame::is_connect_request(&request) {
                return Ok(());
            }
            stream.write_all(&frame::connect_confirm_frame()).await?;
            connected = true;
            continue;
        }
        let Ok(pdu) = frame::parse_pdu(&request) else {
            return Ok(());
        };
        let reference = pdu.pdu_ref;
        let answer = match frame::parse_job(&pdu) {
            Err(_) => frame::error_response(reference, 0x8104),
            Ok(Job::Setup { pdu_size: asked }) => {
                pdu_size = asked.clamp(frame::MIN_PDU, frame::MAX_PDU);
                frame::setup_response(reference, pdu_size)
            }
            Ok(Job::Read(items)) if items.len() > frame::MAX_ITEMS => {
                frame::error_response(reference, 0x8500)
            }
            Ok(Job::Read(items)) => {
                let load_tick = (started.elapsed().as_millis() / LOAD_TICK.as_millis()) as u32;
                let results: Vec<Result<Vec<u8>, u8>> = match silos.lock() {
                    Ok(s) => items.iter().map(|i| s.read(i, load_tick)).collect(),
                    Err(_) => items.iter().map(|_| Err(0x01)).collect(),
                };
                let answer = frame::read_response(reference, &results);
                if answer.len() - 7 > usize::from(pdu_size) {
                    frame::error_response(reference, 0x8500)
                } else {
                    answer
                }
            }
            Ok(Job::Write { item, data }) => {
                let code = match silos.lock() {
                    Ok(mut s) => s.write(&item, &data),
                    Err(_) => 0x01,
                };
                frame::write_response(reference, code)
            }
            Ok(Job::Other(_)) => frame::error_response(reference, 0x8104),
        };
        stream.write_all(&answer).await?;
    }
}
