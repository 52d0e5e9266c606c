//! The demo's silo PLC simulator (`s7-silos`) through the source's own client: the dairy
//! layout of DB1, PDU limits and bit writes that change only their bit. Conformance of the
//! client is tested against python-snap7 (tests/snap7.rs); this checks the simulator the
//! demo relies on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use backplane_model::{BadReason, Quality, Value};
use backplane_s7::{Poller, spawn_silo_simulator};
use common::{addresses, settings};

#[tokio::test]
async fn the_silo_plc_serves_the_dairy_layout_and_writes_single_bits() {
    let (address, task) = spawn_silo_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("s7://{address}");
    let list = [
        "DB1.DBW0:int",
        "DB1.DBD2:real",
        "DB1.DBD6:udint",
        "DB1.DBW10:int",
        "DB1.DBD12:real",
        "DB1.DBD16:udint",
        "MB1",
        "MX1.3",
        "DB7.DBW0",
    ];
    let mut poller = Poller::new(
        "silos",
        settings(&url, "pdu_size = 960\nwrites = true\n"),
        &addresses(&list),
    )
    .unwrap();
    let mut conn = poller.connect().await.unwrap();
    assert_eq!(conn.pdu(), 960);
    let mut readings = poller.poll(&mut conn).await.unwrap();
    readings.sort_by_key(|r| r.address);
    let value = |i: usize| readings[i].value.clone().unwrap();
    assert_eq!(value(0), Value::Int(18_000));
    assert!((2.0..=6.0).contains(&value(1).as_f64().unwrap()));
    assert_eq!((value(2), value(5)), (Value::UInt(2301), Value::UInt(5101)));
    assert_eq!(value(3), Value::Int(2000));
    assert_eq!(
        readings[8].quality,
        Quality::Bad(BadReason::ConfigError),
        "no DB7"
    );

    assert_eq!(
        poller
            .write(&mut conn, 6, &Value::UInt(0b1000_0001))
            .await
            .unwrap()
            .0,
        Some(Value::UInt(0x81))
    );
    let (read_back, _) = poller.write(&mut conn, 7, &Value::Bool(true)).await.unwrap();
    assert_eq!(read_back, Some(Value::Bool(true)));
    let mut readings = poller.poll(&mut conn).await.unwrap();
    readings.sort_by_key(|r| r.address);
    assert_eq!(
        readings[6].value,
        Some(Value::UInt(0b1000_1001)),
        "only bit 3 changed"
    );
    task.abort();
}
