//! The floor: what the path's input and output cost a process on this machine with no
//! work between them, to tell the gateway's own cost from the machine's.
//!
//! `bench-path floor-gateway` does, per poll, what the path needs of the operating system
//! and nothing else, on one thread with blocking sockets (no event loop, no second thread
//! to wake):
//!
//! - the same FC 3 requests over one Modbus TCP connection, one at a time (`in_flight`
//!   1), each answer read whole;
//! - each answer appended to a file with one write (store-and-forward: on disk before it
//!   is sent), and the file's data synced once a poll (the gateway's log syncs once a
//!   second by default);
//! - one write to the broker per answer: the block's 125 per-sample messages, or its one
//!   instance message, at QoS 0.
//!
//! The messages are made once at start, in the sink's JSON and about its sizes, and never
//! again: no decoding, no pipeline, no formatting, no acknowledgements. So what the
//! `--run floor` points measure is a lower bound for any gateway on this machine with the
//! benchmark's setup; the gateway's figure less this one is what its own code costs.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::config::{BLOCK, BLOCKS_PER_UNIT, Payload};

/// Runs until a connection fails (the rig stops it by ending the process).
pub fn run(
    device: u16,
    broker: u16,
    tags: u32,
    payload: Payload,
    period: Duration,
    dir: &Path,
) -> Result<(), String> {
    let mut modbus = TcpStream::connect(("127.0.0.1", device)).map_err(|e| format!("device: {e}"))?;
    modbus.set_nodelay(true).map_err(|e| format!("device: {e}"))?;
    let mut mqtt = connect_mqtt(broker)?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("answers.data"))
        .map_err(|e| format!("answers.data: {e}"))?;
    let blocks = tags.div_ceil(BLOCK);
    let messages: Vec<Vec<u8>> = (0..blocks)
        .map(|b| block_messages(b, (tags - b * BLOCK).min(BLOCK), payload))
        .collect();
    let requests: Vec<[u8; 12]> = (0..blocks)
        .map(|b| request(b, (tags - b * BLOCK).min(BLOCK)))
        .collect();
    println!("running");
    let mut answer = [0u8; 7 + 2 + 2 * BLOCK as usize];
    let mut next = Instant::now();
    loop {
        for (request, messages) in requests.iter().zip(&messages) {
            let length = transact(&mut modbus, request, &mut answer)?;
            log.write_all(&answer[..length])
                .map_err(|e| format!("answers.data: {e}"))?;
            mqtt.write_all(messages).map_err(|e| format!("broker: {e}"))?;
        }
        log.sync_data().map_err(|e| format!("answers.data: {e}"))?;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind: the next poll starts now, as the gateway's poll skips missed ones.
            next = now;
        }
    }
}

/// FC 3 for block `b` of `count` registers, as the gateway addresses it.
fn request(b: u32, count: u32) -> [u8; 12] {
    let unit = u8::try_from(1 + b / BLOCKS_PER_UNIT).unwrap_or(u8::MAX);
    let address = u16::try_from((b % BLOCKS_PER_UNIT) * BLOCK).unwrap_or(0);
    let id = u16::try_from(b % 65_536).unwrap_or(0).to_be_bytes();
    let count = u16::try_from(count).unwrap_or(0).to_be_bytes();
    let address = address.to_be_bytes();
    [
        id[0], id[1], 0, 0, 0, 6, unit, 3, address[0], address[1], count[0], count[1],
    ]
}

/// One request and its whole answer (MBAP header and PDU); returns the answer's length.
fn transact(modbus: &mut TcpStream, request: &[u8; 12], answer: &mut [u8]) -> Result<usize, String> {
    modbus.write_all(request).map_err(|e| format!("device: {e}"))?;
    let (header, rest) = answer.split_at_mut(7);
    modbus.read_exact(header).map_err(|e| format!("device: {e}"))?;
    let pdu = usize::from(u16::from_be_bytes([header[4], header[5]])).saturating_sub(1);
    let body = rest.get_mut(..pdu).ok_or("device: answer longer than asked")?;
    modbus.read_exact(body).map_err(|e| format!("device: {e}"))?;
    Ok(7 + pdu)
}

/// CONNECT (MQTT 3.1.1, clean session, no keep-alive) and its CONNACK.
fn connect_mqtt(port: u16) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("broker: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("broker: {e}"))?;
    let mut connect = rumqttc::Connect::new(format!("bench-path-floor-{}", std::process::id()));
    // None: the connection carries data every poll, and nothing here would answer a ping.
    connect.keep_alive = 0;
    let mut packet = BytesMut::new();
    connect.write(&mut packet).map_err(|e| format!("CONNECT: {e}"))?;
    stream.write_all(&packet).map_err(|e| format!("broker: {e}"))?;
    let mut connack = [0u8; 4];
    stream
        .read_exact(&mut connack)
        .map_err(|e| format!("broker: {e}"))?;
    if connack != [0x20, 2, 0, 0] {
        return Err(format!("broker refused the connection: {connack:02x?}"));
    }
    Ok(stream)
}

/// The bytes written to the broker for one answer of block `b`: QoS 0 PUBLISH packets.
fn block_messages(b: u32, count: u32, payload: Payload) -> Vec<u8> {
    const TIME: &str = "2026-12-06T21:00:00.500183Z";
    let asset = format!("bench/site/area/b{b:05}");
    let context = "\"context\":{}";
    let mut out = BytesMut::new();
    match payload {
        Payload::Sample => {
            for r in 0..count {
                let body = format!(
                    "{{\"kind\":\"sample\",\"path\":\"{asset}/r{r:03}\",\"asset\":\"{asset}\",\
                     \"attribute\":\"r{r:03}\",\"model\":\"Block\",\"value\":{value},\"type\":\"uint\",\
                     \"quality\":\"good\",\"gateway_time\":\"{TIME}\",{context},\"seq\":{seq}}}",
                    value = 10_000 + r,
                    seq = 1_000_000 + r,
                );
                publish(&mut out, &format!("uns/{asset}/r{r:03}"), body.as_bytes());
            }
        }
        Payload::Instance => {
            let mut body = format!(
                "{{\"kind\":\"instance\",\"asset\":\"{asset}\",\"model\":\"Block\",\
                 \"gateway_time\":\"{TIME}\",{context},\"attributes\":{{"
            );
            for r in 0..count {
                if r > 0 {
                    body.push(',');
                }
                body.push_str(&format!(
                    "\"r{r:03}\":{{\"value\":{value},\"type\":\"uint\",\"quality\":\"good\",\"gateway_time\":\"{TIME}\"}}",
                    value = 10_000 + r
                ));
            }
            body.push_str("},\"seq\":1000000}");
            publish(&mut out, &format!("uns/{asset}/_instance"), body.as_bytes());
        }
    }
    out.to_vec()
}

fn publish(out: &mut BytesMut, topic: &str, payload: &[u8]) {
    // Our own topics and payloads, far below MQTT's limits: nothing to refuse.
    let _ = rumqttc::Publish::new(topic, rumqttc::QoS::AtMostOnce, payload).write(out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_instance_message_holds_one_quality_per_register_and_a_sample_message_one() {
        let instance = block_messages(3, 125, Payload::Instance);
        let text = String::from_utf8_lossy(&instance);
        assert_eq!(text.matches("\"quality\":").count(), 125);
        assert!(text.contains("uns/bench/site/area/b00003/_instance"));
        let samples = block_messages(3, 125, Payload::Sample);
        assert_eq!(
            String::from_utf8_lossy(&samples)
                .matches("\"kind\":\"sample\"")
                .count(),
            125
        );
    }

    #[test]
    fn blocks_past_the_first_unit_go_to_the_next_unit_id_from_register_zero() {
        assert_eq!(request(0, 125), [0, 0, 0, 0, 0, 6, 1, 3, 0, 0, 0, 125]);
        let r = request(513, 125);
        assert_eq!((r[6], u16::from_be_bytes([r[8], r[9]])), (2, 125));
    }

    #[test]
    fn the_floor_reads_the_device_appends_its_answers_and_publishes_them() {
        let device = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let device_port = device.local_addr().unwrap().port();
        std::thread::spawn(move || crate::modbus_server::serve(device));
        let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let broker_port = broker.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        std::thread::spawn(move || {
            let _ = run(
                device_port,
                broker_port,
                250,
                Payload::Instance,
                Duration::from_millis(50),
                &path,
            );
        });
        let (mut client, _) = broker.accept().unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut connect = [0u8; 2];
        client.read_exact(&mut connect).unwrap();
        assert_eq!(connect[0], 0x10);
        let mut rest = vec![0u8; usize::from(connect[1])];
        client.read_exact(&mut rest).unwrap();
        client.write_all(&[0x20, 2, 0, 0]).unwrap();
        // Two instance messages a poll.
        let mut first = [0u8; 1];
        client.read_exact(&mut first).unwrap();
        assert_eq!(first[0], 0x30);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(dir.path().join("answers.data"))
            .map(|m| m.len())
            .unwrap_or(0)
            < 2 * 259
        {
            assert!(Instant::now() < deadline, "no answers appended");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
