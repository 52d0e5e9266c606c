//! Two plants and a hub, all real processes on one machine (`examples/enterprise/`): plant
//! A's filler is the demo's Modbus simulator, plant B's a pymodbus device with another
//! vendor's register map; both edges publish to the local NATS JetStream server, the hub
//! mirrors them into its API, its historian and PostgreSQL. Each run has its own stream,
//! subject prefix, consumer, database and ports, removed afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_testkit::names::unique;
use backplane_testkit::net::{free_port, wait_for_port};
use backplane_testkit::peers::{plant_b_filler, workspace_root};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(config: &Path, log: &Path) -> Running {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Running(child)
}

/// One run's names and ports, written into copies of the example files.
struct Enterprise {
    dir: tempfile::TempDir,
    stream: String,
    prefix: String,
    database: String,
    api_a: u16,
    api_b: u16,
    api_hub: u16,
    device_a: u16,
    device_b: u16,
}

impl Enterprise {
    fn new() -> Enterprise {
        let id = unique("ent").replace('-', "_");
        Enterprise {
            dir: tempfile::tempdir().unwrap(),
            stream: id.to_uppercase(),
            prefix: id.clone(),
            database: id,
            api_a: free_port(),
            api_b: free_port(),
            api_hub: free_port(),
            device_a: free_port(),
            device_b: 0,
        }
    }

    fn example(name: &str) -> String {
        std::fs::read_to_string(workspace_root().join("examples/enterprise").join(name)).unwrap()
    }

    /// Copies the example files with this run's names and ports.
    fn write(&self) {
        for name in ["models.toml", "production.toml", "hub-assets.toml"] {
            std::fs::write(self.dir.path().join(name), Self::example(name)).unwrap();
        }
        let rename = |text: String| {
            text.replace("ACME_UNS", &self.stream)
                .replace("\"uns.", &format!("\"{}.", self.prefix))
                .replace("prefix = \"uns\"", &format!("prefix = \"{}\"", self.prefix))
                .replace(
                    "durable = \"acme-hub\"",
                    &format!("durable = \"{}\"", self.prefix),
                )
                .replace(
                    "127.0.0.1:5432/acme",
                    &format!("127.0.0.1:5432/{}", self.database),
                )
                .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", self.api_a))
                .replace("127.0.0.1:8082", &format!("127.0.0.1:{}", self.api_b))
                .replace("127.0.0.1:8090", &format!("127.0.0.1:{}", self.api_hub))
                .replace("127.0.0.1:5020", &format!("127.0.0.1:{}", self.device_a))
                .replace("127.0.0.1:5021", &format!("127.0.0.1:{}", self.device_b))
        };
        for name in ["plant-a.toml", "plant-b.toml", "hub.toml"] {
            std::fs::write(self.dir.path().join(name), rename(Self::example(name))).unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Polls the async `check` every `every` until it answers, for at most `limit`.
/// On giving up, panics with the processes' logs.
async fn until<T, F, Fut>(
    logs: &dyn Fn() -> String,
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}\n{}",
            logs()
        );
        tokio::time::sleep(every).await;
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The sample of `name` among an asset's latest values.
fn attribute(values: &Value, name: &str) -> Option<Value> {
    values
        .as_array()?
        .iter()
        .find(|v| v["attribute"] == name)
        .cloned()
}

async fn post(client: &reqwest::Client, url: &str, body: Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        response.text().await.unwrap()
    );
}

/// Creates, releases and starts a work order on a line of an edge.
async fn start_work_order(client: &reqwest::Client, api: u16, id: &str, line: &str) {
    let base = format!("http://127.0.0.1:{api}/api/v1/production/work-orders");
    post(
        client,
        &base,
        json!({"id": id, "product": "milk-1l", "asset": line}),
    )
    .await;
    for action in ["release", "start"] {
        post(client, &format!("{base}/{id}/{action}"), json!({})).await;
    }
}

async fn psql(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
}

/// Drops the run's database (and its stream) even when the test fails.
struct Cleanup {
    database: String,
    stream: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let database = self.database.clone();
        let stream = self.stream.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async move {
                let admin = psql("postgres").await;
                let _ = admin
                    .execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"), &[])
                    .await;
                if let Ok(nats) = async_nats::connect("127.0.0.1:4222").await {
                    let js = async_nats::jetstream::new(nats);
                    let _ = js.delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_read_at_plant_b_reaches_the_hub_and_postgresql_with_its_context_and_both_plants_fillers_are_compared()
 {
    let mut ent = Enterprise::new();
    let (_device_b, port_b) = plant_b_filler();
    ent.device_b = port_b;
    ent.write();
    let _cleanup = Cleanup {
        database: ent.database.clone(),
        stream: ent.stream.clone(),
    };
    psql("postgres")
        .await
        .execute(&format!("CREATE DATABASE {}", ent.database), &[])
        .await
        .unwrap();

    let _device_a = Running(
        Command::new(BIN)
            .args(["simulate", "modbus-filler", "--listen"])
            .arg(format!("127.0.0.1:{}", ent.device_a))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_for_port(ent.device_a, Duration::from_secs(10)));
    let _edge_a = run(&ent.path("plant-a.toml"), &ent.path("plant-a.log"));
    let _edge_b = run(&ent.path("plant-b.toml"), &ent.path("plant-b.log"));
    let _hub = run(&ent.path("hub.toml"), &ent.path("hub.log"));
    let logs = || {
        ["plant-a.log", "plant-b.log", "hub.log"]
            .iter()
            .map(|n| {
                format!(
                    "--- {n}\n{}",
                    std::fs::read_to_string(ent.path(n)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let client = reqwest::Client::new();
    let hub = format!("http://127.0.0.1:{}/api/v1", ent.api_hub);

    // Plant B's speed (bottles per hour on the wire) arrives at the hub in bottle/min.
    let filler_b = "acme-dairy/plant-b/bottling/line-7/filler";
    let speed_url = format!("{hub}/values?prefix={filler_b}");
    let speed = until(
        &logs,
        "plant B's speed at the hub",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let client = client.clone();
            let url = speed_url.clone();
            async move {
                let values = get(&client, &url).await?;
                let sample = attribute(&values, "speed")?;
                (sample["quality"] == "good").then_some(sample)
            }
        },
    )
    .await;
    assert_eq!(speed["unit"], "bottle/min", "{speed}");
    assert!(
        (speed["value"].as_f64().unwrap() - 360.0).abs() < 1e-6,
        "{speed}\n{}",
        logs()
    );

    // A work order at each plant; plant B's shows on its samples at the hub.
    start_work_order(&client, ent.api_a, "WO-A1", "packaging/line-1").await;
    start_work_order(&client, ent.api_b, "WO-B1", "bottling/line-7").await;
    until(
        &logs,
        "plant B's work order on its samples at the hub",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let client = client.clone();
            let url = speed_url.clone();
            async move {
                let values = get(&client, &url).await?;
                (attribute(&values, "speed")?["context"]["work_order"] == "WO-B1").then_some(())
            }
        },
    )
    .await;

    // The same sample in PostgreSQL, with its context.
    let db = psql(&ent.database).await;
    let query = format!(
        "SELECT value_numeric, work_order FROM backplane.samples_with_context \
         WHERE path = '{filler_b}/speed' AND work_order = 'WO-B1' LIMIT 1"
    );
    let row = until(
        &logs,
        "plant B's sample in PostgreSQL",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let db = &db;
            let query = query.clone();
            async move { db.query_opt(&query, &[]).await.ok().flatten() }
        },
    )
    .await;
    let value: f64 = row.get(0);
    assert!((value - 360.0).abs() < 1e-6);

    // Both fillers fill bottles under their work orders, then both work orders complete:
    // each plant closes a work-order OEE period, the hub compares them.
    for (api, filler) in [
        (ent.api_a, "acme-dairy/plant-a/packaging/line-1/filler"),
        (ent.api_b, filler_b),
    ] {
        let url = format!("http://127.0.0.1:{api}/api/v1/values?prefix={filler}");
        let count = || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let values = get(&client, &url).await?;
                let sample = attribute(&values, "good_count")?;
                (sample["quality"] == "good").then(|| sample["value"].as_f64())?
            }
        };
        let first = until(
            &logs,
            "a good count",
            Duration::from_secs(30),
            Duration::from_millis(200),
            count,
        )
        .await;
        until(
            &logs,
            "bottles filled under the work order",
            Duration::from_secs(60),
            Duration::from_millis(300),
            || async move { count().await.filter(|n| *n >= first + 5.0) },
        )
        .await;
    }
    for (api, id) in [(ent.api_a, "WO-A1"), (ent.api_b, "WO-B1")] {
        post(
            &client,
            &format!("http://127.0.0.1:{api}/api/v1/production/work-orders/{id}/complete"),
            json!({}),
        )
        .await;
    }
    let compare_url = format!("{hub}/benchmark/oee?model=Filler&by=work_order");
    let comparison = until(
        &logs,
        "both plants' fillers compared at the hub",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let client = client.clone();
            let url = compare_url.clone();
            async move {
                let answer = get(&client, &url).await?;
                (answer["rows"].as_array()?.len() == 2).then_some(answer)
            }
        },
    )
    .await;
    assert_eq!(comparison["sites"], json!(["plant-a", "plant-b"]), "{comparison}");
    let rows = comparison["rows"].as_array().unwrap();
    for row in rows {
        assert!(
            row["total"].as_u64().unwrap() > 0,
            "a filler made nothing: {row}\n{}",
            logs()
        );
        assert!(row["oee"].as_f64().is_some(), "{row}");
    }

    // The SQL view answers the same numbers.
    for row in rows {
        let asset = row["asset"].as_str().unwrap();
        let sql = format!(
            "SELECT oee, availability, total::bigint FROM backplane.benchmark_oee \
             WHERE asset = '{asset}' AND period = 'work_order'"
        );
        let found = until(
            &logs,
            "the benchmark view",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                let db = &db;
                let sql = sql.clone();
                async move { db.query_opt(&sql, &[]).await.ok().flatten() }
            },
        )
        .await;
        let oee: f64 = found.get(0);
        let availability: f64 = found.get(1);
        let total: i64 = found.get(2);
        assert!(
            (oee - row["oee"].as_f64().unwrap()).abs() < 1e-9,
            "{asset}: SQL {oee} vs API {row}"
        );
        assert!((availability - row["availability"].as_f64().unwrap()).abs() < 1e-9);
        assert_eq!(total as u64, row["total"].as_u64().unwrap());
    }

    // The hub knows both plants and sees no drift between them.
    let sites = get(&client, &format!("{hub}/hub/sites")).await.unwrap();
    let names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plant-a", "plant-b"], "{sites}");
    assert_eq!(sites["drift"], json!([]), "{sites}");

    // The hub's asset file is what `backplane browse nats://` generates from the plants'
    // published definitions.
    let output = Command::new(BIN)
        .args([
            "browse",
            "nats://127.0.0.1:4222",
            "--stream",
            &ent.stream,
            "--prefix",
            &ent.prefix,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let significant = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        significant(&String::from_utf8_lossy(&output.stdout)),
        significant(&Enterprise::example("hub-assets.toml"))
    );
}
