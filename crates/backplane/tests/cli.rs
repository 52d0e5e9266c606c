//! The binary as a user runs it: `check`, `demo` (read through the HTTP API), `completions`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::process::Command;

use backplane_testkit::process::start_gateway;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_the_dairy_examples() {
    // dairy.toml has the EtherNet/IP palletizer (its fourth model and thirteenth asset),
    // the maintenance shop's MTConnect mill (its fifth model; three assets more) and the
    // reception lab's drop folder (a source more).
    for (file, counts, sources) in [
        ("dairy.toml", "ok — 5 models, 16 assets", "7 sources"),
        ("dairy-mqtt.toml", "ok — 3 models, 12 assets", "5 sources"),
    ] {
        let out = Command::new(BIN)
            .args(["check", &example(file)])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(counts), "{stdout}");
        assert!(stdout.contains(sources), "{stdout}");
        assert!(
            stdout.contains("`line1-plc`: 5 tags in 1 request per cycle"),
            "{stdout}"
        );
    }
}

#[test]
fn check_lists_every_error_of_the_broken_example_with_line_and_column() {
    let out = Command::new(BIN)
        .args(["check", &example("broken.toml")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let located = stderr
        .lines()
        .filter(|l| {
            let Some(rest) = l.split("broken.toml:").nth(1) else {
                return false;
            };
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|p| p.parse::<usize>().ok());
            let column = parts.next().and_then(|p| p.parse::<usize>().ok());
            line.is_some() && column.is_some() && rest.contains("error:")
        })
        .count();
    let summary = stderr.lines().last().unwrap_or_default();
    let total: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        total >= 10,
        "expected many errors, got summary {summary:?}\n{stderr}"
    );
    assert_eq!(located, total, "every error has file:line:column\n{stderr}");
}

#[test]
fn plan_names_each_change_and_says_whether_a_reload_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let dairy = std::fs::read_to_string(example("dairy.toml")).unwrap();
    let old = dir.path().join("old.toml");
    std::fs::write(&old, &dairy).unwrap();
    let plan = |text: &str| {
        let new = dir.path().join("new.toml");
        std::fs::write(&new, text).unwrap();
        let out = Command::new(BIN)
            .arg("plan")
            .arg(&old)
            .arg(&new)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, _) = plan(&dairy.replace("# vendor A sends", "# the vendor sends"));
    assert!(ok && stdout.contains("no changes"), "{stdout}");

    let (ok, stdout, stderr) = plan(&dairy.replace("5020\"\nunit = 1", "5020\"\nunit = 2"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 change\n~ source line1-plc: unit\n"),
        "{stdout}"
    );
    assert!(stdout.contains("A reload (SIGHUP) applies them"), "{stdout}");
    // Which components the reload restarts, and which keep their connections.
    assert!(
        stdout.contains("  source line1-plc restarts: its settings changed (unit)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  source line2-controller keeps running (its connection stays)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  sink history keeps running (its connection stays)\n"),
        "{stdout}"
    );
    // The OPC UA server too: the tree, the stages and the historian it reads stay.
    assert!(
        stdout.contains("  sink opcua keeps running (its connection stays)\n"),
        "{stdout}"
    );

    // A new asset: the sources keep running, every sink restarts to build its new tree.
    let machine = "\n[[assets]]\npath = \"packaging/line-1/labeller\"\nlevel = \"equipment\"\n";
    let (ok, stdout, stderr) = plan(&format!("{dairy}{machine}"));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("  source line1-plc keeps running (its connection stays)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  sink opcua restarts: the asset tree changed\n"),
        "{stdout}"
    );

    let (ok, stdout, _) = plan(&dairy.replace("[api]\nlisten", "[api]\nmax_connections = 7\nlisten"));
    assert!(ok);
    assert!(stdout.contains("a reload refuses this"), "{stdout}");
    assert!(
        stdout.contains("~ [api]: max_connections — takes effect when the gateway restarts"),
        "{stdout}"
    );

    let (ok, _, stderr) = plan(&dairy.replace("kind = \"modbus\"", "kind = \"modbuss\""));
    assert!(!ok);
    assert!(
        stderr.contains("unknown source kind `modbuss`") && stderr.contains("a reload refuses it"),
        "{stderr}"
    );
}

#[test]
fn completions_are_generated_for_bash() {
    let out = Command::new(BIN).args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_backplane"));
}

#[test]
fn the_gateway_allocates_with_jemalloc_and_the_options_built_into_it() {
    // jemalloc prints its statistics, options among them, at exit when asked through the
    // environment; the C library's allocator would print nothing.
    let out = Command::new(BIN)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for option in [
        "opt.narenas: 1\n",
        "opt.dirty_decay_ms: 1000 ",
        "opt.muzzy_decay_ms: 0 ",
        "opt.background_thread: true ",
    ] {
        assert!(
            stats.contains(option),
            "`{option}` (.cargo/config.toml) is not in force; jemalloc said:\n{stats}"
        );
    }
}

/// Address and size of the gateway binary's section `name` (`readelf --section-headers`).
#[cfg(target_arch = "x86_64")]
fn section(name: &str) -> Option<(u64, u64)> {
    let out = Command::new("readelf")
        .args(["--section-headers", "--wide", BIN])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sections = String::from_utf8_lossy(&out.stdout);
    // "[16] .text PROGBITS <address> <offset> <size> ..."
    let line = sections
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == name))?;
    let mut fields = line.split_whitespace().skip_while(|w| *w != name).skip(2);
    let address = u64::from_str_radix(fields.next()?, 16).ok()?;
    let size = u64::from_str_radix(fields.nth(1)?, 16).ok()?;
    Some((address, size))
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_gateway_packs_its_relative_relocations() {
    // `build.rs` links with `-z pack-relative-relocs`: the loader then reads a short RELR
    // table at start instead of megabytes of `.rela.dyn`, which stayed resident.
    let out = Command::new("readelf").args(["--dynamic", BIN]).output().unwrap();
    assert!(out.status.success());
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains("(RELR)"),
        "no RELR table; readelf said:\n{dynamic}"
    );
    let rela = section(".rela.dyn").map(|(_, size)| size);
    assert!(
        rela.is_none_or(|size| size < 64 * 1024),
        "`.rela.dyn` still holds {rela:?} bytes"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_gateway_places_the_code_it_runs_in_front_of_the_rest() {
    // `build.rs` hands `hot-text.txt` to the linker as its symbol ordering: the listed
    // functions this binary has come first in `.text`, in the list's order. This test's
    // unoptimised build shares the standard library's functions with the release build
    // the list was made from (the same compiler), so those are the ones it finds.
    let list: Vec<&str> = include_str!("../hot-text.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let out = Command::new("nm").args(["--defined-only", BIN]).output().unwrap();
    assert!(out.status.success());
    let symbols = String::from_utf8_lossy(&out.stdout);
    let address: std::collections::HashMap<&str, u64> = symbols
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let address = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?;
            let name = f.next()?;
            matches!(kind, "t" | "T").then_some((name, address))
        })
        .collect();
    let placed: Vec<(&str, u64)> = list
        .iter()
        .filter_map(|name| address.get(name).map(|a| (*name, *a)))
        .collect();
    assert!(
        placed.len() >= 50,
        "only {} of the {} listed functions are in this build: run scripts/hot-text",
        placed.len(),
        list.len()
    );
    for pair in placed.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "`{}` at {:#x} lies behind `{}` at {:#x}, listed after it: the list is not the link order",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1
        );
    }
    let (text, _) = section(".text").unwrap();
    assert!(
        placed[0].1 < text + 4096,
        "the first listed function is at {:#x}, not at the front of `.text` ({text:#x})",
        placed[0].1
    );
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

#[tokio::test]
async fn demo_serves_the_dairy_plant_and_stamps_work_orders() {
    let data = tempfile::tempdir().unwrap();
    let (mut demo, base, _) = start_gateway(
        Command::new(BIN)
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path()),
        0,
    );

    let client = reqwest::Client::new();
    let tree = get(&client, &format!("{base}/api/v1/assets")).await;
    let text = tree.to_string();
    for asset in [
        "reception/silo-1",
        "reception/silo-2",
        "processing/pasteurizer",
        "line-1/filler",
        "line-2/filler",
        "packaging/palletizer",
    ] {
        assert!(text.contains(asset), "tree lacks {asset}: {text}");
    }

    // The palletizer reads its Logix tags over EtherNet/IP from the demo's simulator.
    let palletizer = format!("{base}/api/v1/assets/acme-dairy/plant-a/packaging/palletizer");
    let mut asset = Value::Null;
    for _ in 0..600 {
        asset = get(&client, &palletizer).await;
        if asset["attributes"]
            .as_object()
            .unwrap()
            .values()
            .all(|a| a["quality"] == "good")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attributes = asset["attributes"].as_object().unwrap();
    assert!(attributes.values().all(|a| a["quality"] == "good"), "{asset}");
    assert_eq!(attributes["recipe"]["value"], "MILK-1L-6x4");
    assert_eq!(attributes["layers_per_pallet"]["value"], 5);

    // The reception's lab analyser drops a CSV into the data directory; the drop-folder
    // source maps silo 1's row to its lab attributes and moves the file to done/.
    let silo = format!("{base}/api/v1/assets/acme-dairy/plant-a/reception/silo-1");
    let first = data.path().join("lab-inbox/done/lab-000001.csv");
    let mut lab = Value::Null;
    for _ in 0..600 {
        lab = get(&client, &silo).await["attributes"].clone();
        // The file is moved once its values went through the pipeline: after they show.
        if ["fat", "protein", "somatic_cells"]
            .iter()
            .all(|a| lab[a]["quality"] == "good")
            && first.exists()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fat = lab["fat"]["value"].as_f64().unwrap_or(0.0);
    assert!((3.0..=5.0).contains(&fat), "silo 1 lab values: {lab}");
    assert!(first.exists(), "the analyser's first file was not moved to done/");

    let filler = |line: &str| format!("{base}/api/v1/assets/acme-dairy/plant-a/packaging/{line}/filler");
    let mut fillers = Vec::new();
    for line in ["line-1", "line-2"] {
        let mut asset = Value::Null;
        // Up to 30 s: line 2 opens a secure OPC UA session first (a safety net, not a budget).
        for _ in 0..600 {
            asset = get(&client, &filler(line)).await;
            let all_good = asset["attributes"]
                .as_object()
                .unwrap()
                .values()
                .all(|a| a["quality"] == "good");
            if all_good {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fillers.push(asset);
    }
    let shape = |asset: &Value| -> Vec<(String, Value, Value, Value)> {
        asset["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, a)| {
                (
                    k.clone(),
                    a["type"].clone(),
                    a["unit"].clone(),
                    a["quality"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        shape(&fillers[0]),
        shape(&fillers[1]),
        "both fillers have the same Filler shape"
    );
    assert_eq!(fillers[0]["attributes"]["product_temperature"]["unit"], "degC");
    assert_eq!(fillers[0]["attributes"]["speed"]["unit"], "bottle/min");
    assert!(
        shape(&fillers[0]).iter().all(|(_, _, _, q)| q == "good"),
        "{}",
        fillers[0]
    );

    // Values change over time.
    let values =
        |v: Value| -> Vec<Value> { v.as_array().unwrap().iter().map(|s| s["value"].clone()).collect() };
    let plant = format!("{base}/api/v1/values?prefix=acme-dairy/plant-a");
    let first = values(get(&client, &plant).await);
    let mut changed = false;
    for _ in 0..100 {
        if values(get(&client, &plant).await) != first {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changed, "no value of the plant changed");

    // A work order set on line 1 shows up in its filler's values.
    let response = client
        .put(format!(
            "{base}/api/v1/context/acme-dairy/plant-a/packaging/line-1"
        ))
        .json(&serde_json::json!({"work_order": "WO-1001", "product": "milk-1l"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut stamped = false;
    for _ in 0..100 {
        let asset = get(&client, &filler("line-1")).await;
        if asset["attributes"]["speed"]["context"]["work_order"] == "WO-1001"
            || (asset["context"]["work_order"] == "WO-1001"
                && asset["attributes"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|a| a["context"]["work_order"] == "WO-1001"))
        {
            stamped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stamped, "the work order never reached the filler's values");
    let line2 = get(&client, &filler("line-2")).await;
    assert_ne!(
        line2["context"]["work_order"], "WO-1001",
        "line 2 is not affected"
    );

    // The historian stores the work order with the values (the sink flushes on its own
    // schedule, so poll).
    let mut stored = 0;
    for _ in 0..100 {
        let raw = get(
            &client,
            &format!("{base}/api/v1/history/raw?model=Filler&attribute=speed&work_order=WO-1001&from=now-1h"),
        )
        .await;
        stored = raw["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["points"].as_array().unwrap().len())
            .sum();
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored > 0, "no stored speed during WO-1001");

    // The demo plays the MES: a work order runs on each line, both fillers' machine states
    // are tracked, and once the pasteurizer reported a batch, a pallet traces back through
    // a filler lot and that batch to the silos' milk (bounded waits, not timing checks).
    let running = get(
        &client,
        &format!("{base}/api/v1/production/work-orders?status=running"),
    )
    .await;
    let ids: Vec<&str> = running
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert!(ids.contains(&"WO-1001") && ids.contains(&"WO-1002"), "{running}");
    let states = get(&client, &format!("{base}/api/v1/production/states")).await;
    // The two fillers and the maintenance shop's CNC mill.
    assert_eq!(states.as_array().unwrap().len(), 3, "{states}");
    assert!(
        states.as_array().unwrap().iter().any(|s| s["asset"]
            .as_str()
            .is_some_and(|a| a.ends_with("maintenance/machining/mill-1"))),
        "{states}"
    );
    let mut pallet = None;
    for _ in 0..600 {
        let lots = get(&client, &format!("{base}/api/v1/production/lots")).await;
        pallet = lots
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["id"].as_str())
            .find(|id| id.starts_with("PAL-"))
            .map(str::to_owned);
        if pallet.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pallet = pallet.expect("the demo never made a pallet");
    let trace = get(
        &client,
        &format!("{base}/api/v1/production/lots/{pallet}/trace?direction=backward"),
    )
    .await;
    let upstream: Vec<&str> = trace["backward"]["lots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["lot"].as_str())
        .collect();
    for prefix in ["F1-B", "B", "S1-", "S2-"] {
        assert!(
            upstream.iter().any(|l| l.starts_with(prefix)),
            "no {prefix}… lot upstream of {pallet}: {trace}"
        );
    }

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(s) = demo.0.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        exit.is_some_and(|s| s.success()),
        "demo did not exit cleanly: {exit:?}"
    );
    assert!(data.path().join("samples.jsonl").metadata().unwrap().len() > 0);

    // What the demo stored exports as a wide table, one row per filler per interval.
    let csv = data.path().join("fillers.csv");
    let out = Command::new(BIN)
        .args(["export", "--store"])
        .arg(data.path().join("history"))
        .args([
            "--model", "Filler", "--from", "now-1h", "--to", "now", "--every", "1s", "--output",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = std::fs::read_to_string(&csv).unwrap();
    let header = table.lines().next().unwrap();
    for column in ["speed", "good_count", "product_temperature", "work_order"] {
        assert!(header.contains(column), "no `{column}` column in {header}");
    }
    assert!(table.lines().count() > 2, "{table}");
    assert!(table.contains("WO-1001"), "the work order is a context column");
}

#[test]
fn check_points_into_a_derived_attributes_expression() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plant.toml");
    std::fs::write(
        &file,
        r#"[gateway]
name = "edge"
[namespace]
enterprise = "acme"
site = "plant"
[models.Filler.attributes]
good_count = { type = "uint", unit = "bottle" }
rate = { type = "float", unit = "bottle/min", expr = "delta(good_cont) / dt_min" }

[[assets]]
path = "line-1"
level = "line"

[[assets]]
path = "line-1/filler"
model = "Filler"
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim_end().ends_with("1 error"),
        "only the expression's error: {stderr}"
    );
    assert!(
        stderr.contains("plant.toml:8:61: error: unknown attribute `good_cont` of model `Filler`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: did you mean `good_count`?"), "{stderr}");
    // The caret sits under the misspelled name inside the string.
    let caret = stderr.lines().find(|l| l.contains('^')).unwrap();
    let source = stderr.lines().find(|l| l.contains("rate = {")).unwrap();
    assert_eq!(caret.find('^'), source.find("good_cont"), "{stderr}");
}
