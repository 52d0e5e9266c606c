//! What one audit record costs: encoding and hashing alone, and an append to the trail
//! on disk (written and synced before `record` returns, as every audited change waits for).
//! `cargo bench -p backplane-security`; figures in docs/security.md.

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use backplane_security::{AuditEvent, AuditLog, AuditRecorder, AuthMethod, Identity, Outcome, Role};
use criterion::{Criterion, criterion_group, criterion_main};

fn event() -> AuditEvent {
    AuditEvent {
        who: Some(Identity::new("anna", Role::Operator, AuthMethod::Session)),
        from: "http 10.0.0.7:51234".into(),
        action: "write".into(),
        target: "acme/plant-a/packaging/line-1/filler/speed_setpoint".into(),
        old: Some(serde_json::json!(120.0)),
        new: Some(serde_json::json!(150.0)),
        outcome: Outcome::Done,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = AuditLog::open(dir.path()).expect("the trail opens");
    let e = event();
    c.bench_function("audit_append_synced", |b| {
        b.iter(|| log.record(e.clone()).expect("recorded"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
