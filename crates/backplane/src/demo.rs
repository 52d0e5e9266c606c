//! What the dairy demo does besides simulating devices: it plays the MES. At start it
//! creates and starts a work order on each filling line, and once the pasteurizer has
//! reported its first batch it opens a filler lot on each line fed from that batch and a
//! pallet from line 1's lot, so the API shows a whole genealogy (silo lot → pasteurizer
//! batch → filler lot → pallet). Everything goes through the same commands an MES would
//! send (`backplane_production::Command`), so the demo exercises the real path.

use std::time::Duration;

use backplane_engine::EngineHandle;
use backplane_model::sample::LotStatus;
use backplane_production::Command;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

/// Who the demo's commands are attributed to.
const BY: &str = "demo-mes";

/// How long to wait for the pasteurizer's first batch (its OPC UA session is secure and
/// takes a few seconds to open).
const BATCH_WAIT: Duration = Duration::from_secs(120);

pub fn script(engine: EngineHandle) -> BoxFuture<'static, ()> {
    async move {
        for (id, line, product, rate) in [
            ("WO-1001", "packaging/line-1", "milk-1l-whole", 400.0),
            ("WO-1002", "packaging/line-2", "milk-1l-semi", 420.0),
        ] {
            // A restarted demo restores its state: the orders may exist already.
            if engine.production_view(|p| p.work_order(id).is_some()) {
                continue;
            }
            let create = json!({
                "command": "create_work_order", "id": id, "product": product, "asset": line,
                "planned_quantity": 20000, "ideal_rate_per_min": rate,
            });
            for command in [
                create,
                json!({"command": "release_work_order", "id": id}),
                json!({"command": "start_work_order", "id": id}),
            ] {
                run(&engine, command).await;
            }
        }

        let pasteurizer = "processing/pasteurizer";
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        let batch = loop {
            let open = engine.production_view(|p| {
                p.lots()
                    .filter(|l| l.status == LotStatus::Active)
                    .find(|l| {
                        l.asset
                            .as_ref()
                            .is_some_and(|a| a.as_str().ends_with(pasteurizer))
                    })
                    .map(|l| l.id.to_string())
            });
            if let Some(batch) = open {
                break batch;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("demo: the pasteurizer reported no batch; no filler lots created");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let mut filler_lots = Vec::new();
        for (line, prefix) in [
            ("packaging/line-1/filler", "F1"),
            ("packaging/line-2/filler", "F2"),
        ] {
            let lot = format!("{prefix}-{batch}");
            if engine.production_view(|p| p.lot(&lot).is_some()) {
                continue;
            }
            run(
                &engine,
                json!({"command": "create_lot", "id": lot, "material": "milk-1l-bottles",
                       "unit": "bottle", "asset": line, "status": "active"}),
            )
            .await;
            run(
                &engine,
                json!({"command": "record_genealogy", "produced": lot,
                       "consumed": [{"lot": batch, "quantity": 8000, "unit": "L"}]}),
            )
            .await;
            filler_lots.push(lot);
        }
        if let Some(first) = filler_lots.first() {
            let pallet = format!("PAL-{first}");
            run(
                &engine,
                json!({"command": "create_lot", "id": pallet, "material": "pallet-milk-1l",
                       "quantity": 960, "unit": "bottle", "asset": "packaging/line-1", "status": "complete"}),
            )
            .await;
            run(
                &engine,
                json!({"command": "record_genealogy", "produced": pallet,
                       "consumed": [{"lot": first, "quantity": 960, "unit": "bottle"}]}),
            )
            .await;
        }
    }
    .boxed()
}

async fn run(engine: &EngineHandle, command: serde_json::Value) {
    let text = command.to_string();
    let result = match Command::parse(text.as_bytes()) {
        Ok(command) => engine
            .execute(command, Some(BY.to_owned()))
            .await
            .map_err(|e| e.to_string()),
        Err(refusal) => Err(refusal.message()),
    };
    if let Err(e) = result {
        tracing::warn!(command = %text, error = %e, "demo: command refused");
    }
}
