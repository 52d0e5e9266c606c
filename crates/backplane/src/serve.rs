//! Running a plan: the engine, the HTTP API, reloads on SIGHUP, and shutdown on
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backplane_api::ApiOptions;
use backplane_api::admin::{ReloadCall, ReloadReport, ReloadResult};
use backplane_api::swap::RouterSwap;
use backplane_config::Plan;
use backplane_engine::{Engine, EngineHandle, EngineOptions, Registry, ReloadFailed, Services};

/// Printed once the API listens, with the base URL the demo user should open.
pub type Banner = fn(&str);

/// Runs beside the engine once it started (the demo's MES); stopped at shutdown.
pub type Script = fn(EngineHandle) -> futures::future::BoxFuture<'static, ()>;

/// Runs `main` on a multi-threaded runtime of `workers` threads (`None`: one per CPU, or
/// what `TOKIO_WORKER_THREADS` says); an error message becomes exit code 1.
pub fn run_blocking<F, Fut>(workers: Option<usize>, main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the engine and the API for `plan` and runs until SIGINT/SIGTERM. With the
/// configuration's `file`, SIGHUP reloads it (see [`Running::reload`]).
pub async fn run(
    plan: Plan,
    registry: &Registry,
    file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    banner: Option<Banner>,
    script: Option<Script>,
) -> Result<(), String> {
    // Before anything else: SIGHUP's default action ends the process.
    let mut hangups = hangup_signals();
    // Reloads asked for through the API (`POST /api/v1/admin/reload`), one at a time.
    let (reload_tx, mut reload_calls) = tokio::sync::mpsc::channel::<ReloadCall>(1);
    let token = match &plan.api.token {
        Some(secret) => Some(secret.resolve().map_err(|e| format!("[api] token: {e}"))?),
        None => None,
    };
    // An unreadable or invalid users file stops the start, naming the file and line.
    let users = match &plan.api.users {
        Some(path) => backplane_api::users::Users::load(path).map_err(|e| format!("[api] users: {e}"))?,
        None => backplane_api::users::Users::default(),
    };
    let address = listen.unwrap_or(plan.api.listen);
    if !address.ip().is_loopback() && token.is_none() && users.is_empty() {
        return Err(format!(
            "refusing to serve the API on {address} without credentials: anyone on the network could change \
             context; set [api] users = \"users.toml\" (see `backplane users`) or token = \"env:NAME\", \
             or listen on 127.0.0.1"
        ));
    }
    if !address.ip().is_loopback() && plan.api.tls.is_none() {
        tracing::warn!(%address, "the API serves plain HTTP on a network address: tokens and session cookies cross the network readable; set [api.tls]");
        eprintln!(
            "warning: the API serves plain HTTP on {address}: tokens and session cookies cross the network readable; set [api.tls]"
        );
    }
    let tls = match &plan.api.tls {
        Some(settings) => Some(std::sync::Arc::new(tls_server(&plan, settings, address)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!("cannot listen on {address}: {e} (pass --listen with another address, or port 0 for any free port)")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let limits = (plan.api.max_connections, plan.api.header_read_timeout);
    let options = ApiOptions {
        token,
        users,
        sessions: backplane_api::SessionSettings {
            idle: plan.api.session_idle,
            lifetime: plan.api.session_lifetime,
        },
        rate_limit: backplane_api::RateLimit {
            requests_per_second: plan.api.rate_limit.requests_per_second,
            burst: plan.api.rate_limit.burst,
        },
        max_body_bytes: plan.api.max_body_bytes,
        hosts: plan.api.hosts.clone(),
        // For working on the UI: serve its files from a directory, so a change shows on reload.
        reload: file.is_some().then(|| reload_tx.clone()),
        ui: match std::env::var_os("BACKPLANE_UI_DIR") {
            Some(dir) => {
                tracing::warn!(dir = %std::path::Path::new(&dir).display(), "serving the web UI from a directory (BACKPLANE_UI_DIR), not the built-in files");
                backplane_ui::Ui::from_dir(dir)
            }
            None => backplane_ui::Ui::Embedded,
        },
    };
    // The engine opens what the kinds prepare (e.g. each historian sink's store, recovered)
    // before anything runs; the API finds those services on the engine.
    // The audit trail, before anything that could change something runs.
    let audit_dir = crate::audit::dir(&plan);
    let audit = backplane_security::AuditLog::open(&audit_dir).map_err(|e| format!("audit trail: {e}"))?;
    let (seq, hash) = audit.head();
    tracing::info!(dir = %audit_dir.display(), last_record = seq, last_hash = %hash, "audit trail open");
    // The same log twice: as the recorder every door writes to, and for the API's queries.
    let audit = Arc::new(audit);
    let mut services = Services::one(
        backplane_security::AuditTrail::SERVICE,
        Arc::new(backplane_security::AuditTrail(audit.clone())),
    );
    services.insert(backplane_security::AuditTrail::SERVICE, audit);
    // Discovery from the UI (POST /api/v1/discover): every kind's browser, with this
    // gateway's own OPC UA PKI directory and name, which callers cannot choose.
    let mut fixed = backplane_connector::Options::default();
    fixed.push(
        "pki-dir",
        plan.gateway.data_dir.join("opcua").join("pki").to_string_lossy(),
    );
    fixed.push("gateway", plan.gateway.name.clone());
    services.insert(
        backplane_connector::Discovery::SERVICE,
        Arc::new(backplane_connector::Discovery {
            browsers: backplane::kinds::browsers(registry),
            fixed,
        }),
    );
    let api_audit = services.named::<backplane_security::AuditTrail>(backplane_security::AuditTrail::SERVICE);
    let engine = start_engine(plan, registry, &services, Vec::new(), "start").map_err(|e| e.to_string())?;
    let api = backplane_api::Api::new(options, api_audit);
    let swap = RouterSwap::new(api.router(engine.handle()));

    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{bound}");
    // The first line on stdout, which scripts (and the end-to-end tests) read.
    println!("API listening on {base}");
    if let Some(tls) = &tls {
        // What a client compares when it first meets a self-signed certificate.
        println!("API TLS certificate SHA-256 fingerprint: {}", tls.fingerprint());
        tracing::info!(
            fingerprint = tls.fingerprint(),
            generated = tls.generated(),
            "API TLS certificate"
        );
    }
    if let Some(banner) = banner {
        banner(&base);
    }
    tracing::info!(%base, "started");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = backplane_api::ServeLimits {
        max_connections: limits.0,
        header_read_timeout: limits.1,
    };
    let api_task = tokio::spawn(backplane_api::serve_tls(
        listener,
        swap.router(),
        limits,
        tls,
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut running = Running {
        script_task: script.map(|s| tokio::spawn(s(engine.handle()))),
        engine: Some(engine),
        registry,
        services,
        api,
        swap,
        script,
        file,
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = next_hangup(&mut hangups) => running.hangup().await,
            Some(call) = reload_calls.recv() => {
                let report = running.reload(call.apply).await;
                let _ = call.reply.send(report);
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    match api_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the API stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the API task failed"),
    }
    running.stop().await;
    Ok(())
}

/// Starts an engine for `plan` with the program's services and, after a reload, the
/// contexts carried over from the engine it replaces.
fn start_engine(
    plan: Plan,
    registry: &Registry,
    services: &Services,
    contexts: Vec<(String, backplane_model::Context)>,
    reason: &str,
) -> Result<Engine, backplane_engine::ComponentError> {
    record_version(&plan, reason, backplane_model::Timestamp::now());
    let options = EngineOptions {
        services: services.clone(),
        contexts,
        ..EngineOptions::default()
    };
    Engine::start(plan, registry, options)
}

/// Keeps the version about to run in the data directory's archive of past versions, so a
/// stored sample can be tied to the configuration it was read under (by its gateway time).
/// Written before the engine's sources start. A failure is logged, never stops the start.
fn record_version(plan: &Plan, reason: &str, from: backplane_model::Timestamp) {
    let archive = backplane_config::archive::Archive::new(&plan.gateway.data_dir);
    let short = &plan.version[..plan.version.len().min(12)];
    match archive.record(plan, from, reason) {
        Ok((_, None)) => tracing::info!(
            version = short,
            reason,
            "configuration version recorded and archived"
        ),
        Ok((_, Some(why))) => {
            tracing::info!(version = short, reason, why = %why, "configuration version recorded; its files are not archived")
        }
        Err(e) => {
            tracing::error!(version = short, dir = %archive.dir().display(), error = %e, "configuration version not recorded")
        }
    }
}

/// What runs between the start and the shutdown, and is replaced by a reload.
struct Running<'r> {
    /// `None` only while a reload swaps it.
    engine: Option<Engine>,
    registry: &'r Registry,
    services: Services,
    api: backplane_api::Api,
    swap: RouterSwap,
    script: Option<Script>,
    script_task: Option<tokio::task::JoinHandle<()>>,
    /// The configuration file; `None` for the demo (built in, nothing to reload).
    file: Option<PathBuf>,
}

impl Running<'_> {
    /// Reloads the configuration file (`apply`), or only says what a reload would do. A
    /// file with errors, or one changing `[gateway]` or `[api]`, is refused and the running
    /// configuration stays. Otherwise [`Engine::reload`] applies it: the sources, sinks
    /// and stages the change leaves alone keep running with their connections and state
    /// (`backplane_engine::continuity` decides), the rest stops as at shutdown (buffered
    /// sinks keep what they have not sent in their log, production state is saved) and
    /// starts again for the new plan, with every asset's context and the latest values
    /// carried over; the API keeps its listener, sessions and limits and serves the new
    /// engine from the next request. Should the new engine fail to start, the previous
    /// configuration runs again.
    async fn reload(&mut self, apply: bool) -> ReloadReport {
        use crate::reload::Decision;
        let Some(engine) = self.engine.take() else {
            return unchanged(String::new());
        };
        let version = engine.handle().topology().plan.version.clone();
        let Some(file) = &self.file else {
            self.engine = Some(engine);
            return unchanged(version);
        };
        let running = engine.handle().topology().bound_plan();
        let decision = crate::reload::decide(file, self.registry, &running);
        let (new, changes) = match decision {
            Decision::Unchanged => {
                self.engine = Some(engine);
                return unchanged(version);
            }
            Decision::Invalid(why) => return self.keep(engine, ReloadResult::Invalid, why, apply, version),
            Decision::Refused(changes) => {
                let why = crate::reload::refusals(&changes);
                return self.keep(engine, ReloadResult::Refused, why, apply, version);
            }
            Decision::Apply(new, changes) => {
                let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                if !apply {
                    let components =
                        crate::reload::components(engine.handle().topology(), *new, self.registry);
                    self.engine = Some(engine);
                    return report(ReloadResult::Changes, changes, components, Vec::new(), version);
                }
                for change in &changes {
                    tracing::info!(%change, "reload");
                }
                (*new, changes)
            }
        };
        let options = EngineOptions {
            services: self.services.clone(),
            contexts: engine.handle().own_contexts(),
            ..EngineOptions::default()
        };
        if let Some(task) = self.script_task.take() {
            task.abort();
        }
        let mut record =
            |plan: &Plan, reason: &str, from: backplane_model::Timestamp| record_version(plan, reason, from);
        let (engine, result, components, errors) = match engine
            .reload(new, self.registry, options, &mut record)
            .await
        {
            Ok((engine, effects)) => {
                let version = engine.handle().topology().plan.version.clone();
                tracing::info!(version = %&version[..version.len().min(12)], "reload: the new configuration runs");
                let components: Vec<String> = effects.iter().map(ToString::to_string).collect();
                for line in &components {
                    tracing::info!(component = %line, "reload");
                }
                (engine, ReloadResult::Applied, components, Vec::new())
            }
            Err(ReloadFailed {
                error,
                engine: Some(engine),
            }) => (
                engine,
                ReloadResult::Invalid,
                Vec::new(),
                vec![format!(
                    "the new configuration did not start: {error}; the previous one runs again"
                )],
            ),
            Err(ReloadFailed { error, engine: None }) => {
                // Nothing runs any more: end the process, its supervisor restarts it.
                tracing::error!(error = %error, "reload: neither the new nor the previous configuration started; exiting");
                std::process::exit(1);
            }
        };
        self.swap.replace(self.api.router(engine.handle()));
        self.script_task = self.script.map(|s| tokio::spawn(s(engine.handle())));
        let version = engine.handle().topology().plan.version.clone();
        self.engine = Some(engine);
        report(result, changes, components, errors, version)
    }

    /// A refused reload (or its plan): the running engine stays; a refused reload is logged.
    fn keep(
        &mut self,
        engine: Engine,
        result: ReloadResult,
        why: Vec<String>,
        logged: bool,
        version: String,
    ) -> ReloadReport {
        if logged {
            for line in &why {
                tracing::error!("reload refused: {line}");
            }
            tracing::error!("reload refused; the running configuration stays");
        }
        self.engine = Some(engine);
        report(result, Vec::new(), Vec::new(), why, version)
    }

    /// A reload on SIGHUP, recorded in the audit trail like one through the API.
    async fn hangup(&mut self) {
        if self.file.is_none() {
            tracing::info!("SIGHUP: the demo's configuration is built in; nothing to reload");
            return;
        }
        tracing::info!("SIGHUP: reloading the configuration");
        let report = self.reload(true).await;
        if report.result == ReloadResult::Unchanged {
            tracing::info!("reload: the configuration has not changed");
        }
        if let Some(trail) = self
            .services
            .named::<backplane_security::AuditTrail>(backplane_security::AuditTrail::SERVICE)
        {
            let outcome = match report.result {
                ReloadResult::Applied | ReloadResult::Unchanged => backplane_security::Outcome::Done,
                _ => backplane_security::Outcome::Refused(report.errors.join("; ")),
            };
            let _ = trail.0.record(backplane_security::AuditEvent {
                who: None,
                from: "signal SIGHUP".to_owned(),
                action: "config.reload".to_owned(),
                target: String::new(),
                old: None,
                new: Some(serde_json::json!({
                    "result": report.result,
                    "changes": report.changes,
                    "config_version": report.config_version,
                })),
                outcome,
            });
        }
    }

    async fn stop(mut self) {
        if let Some(task) = self.script_task.take() {
            task.abort();
        }
        if let Some(engine) = self.engine.take() {
            engine.shutdown().await;
        }
    }
}

/// Nothing to do: what runs stays.
fn unchanged(config_version: String) -> ReloadReport {
    report(
        ReloadResult::Unchanged,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        config_version,
    )
}

fn report(
    result: ReloadResult,
    changes: Vec<String>,
    components: Vec<String>,
    errors: Vec<String>,
    config_version: String,
) -> ReloadReport {
    ReloadReport {
        result,
        changes,
        components,
        errors,
        config_version,
    }
}

/// SIGHUP, registered at start (unix only).
#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reloads are off");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Option<()> {
    None
}

#[cfg(unix)]
async fn next_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending::<()>().await;
}

/// The API's TLS side from `[api.tls]`. A self-signed certificate is made for localhost,
/// the loopback addresses, the gateway's name, `[api] hosts` and a specific listen address.
fn tls_server(
    plan: &Plan,
    settings: &backplane_config::ApiTls,
    address: SocketAddr,
) -> Result<backplane_api::TlsServer, String> {
    use backplane_api::CertificateSource;
    let certificate = match &settings.certificate {
        backplane_config::ApiCertificate::Files { cert, key } => CertificateSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        backplane_config::ApiCertificate::SelfSigned => {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            names.push(plan.gateway.name.clone());
            names.extend(plan.api.hosts.iter().cloned());
            if !address.ip().is_unspecified() {
                names.push(address.ip().to_string());
            }
            names.sort();
            names.dedup();
            CertificateSource::SelfSigned {
                dir: plan.gateway.data_dir.join("api-tls"),
                names,
            }
        }
    };
    let options = backplane_api::TlsOptions {
        certificate,
        client_ca: settings.client_ca.clone(),
        require_client_cert: settings.client_certs == backplane_config::ClientCerts::Required,
        clients: settings.clients.clone(),
    };
    backplane_api::TlsServer::new(&options).map_err(|e| format!("[api.tls]: {e}"))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The demo's OPC UA server URL, for the banner (set before the demo starts).
static DEMO_OPCUA_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the URL [`demo_banner`] prints for the demo's OPC UA server.
pub fn set_demo_opcua_url(url: String) {
    let _ = DEMO_OPCUA_URL.set(url);
}

pub fn demo_banner(base: &str) {
    let filler = "acme-dairy/plant-a/packaging/line-1/filler";
    let opcua = DEMO_OPCUA_URL.get().map_or(String::new(), |url| {
        format!(
            "  OPC UA server     {url}  (no security, anonymous: the demo only; \
             docs/connectors/opcua-server.md)\n"
        )
    });
    println!(
        "
Backplane demo: the simulated Acme Dairy, plant A, is running.

  Open {base}/ in a browser: the plant, live values, trends, production, forms.

  Asset tree        curl {base}/api/v1/assets
  Filler, line 1    curl {base}/api/v1/assets/{filler}
  Filler, line 2    curl {base}/api/v1/assets/acme-dairy/plant-a/packaging/line-2/filler
  Palletizer        curl {base}/api/v1/assets/acme-dairy/plant-a/packaging/palletizer
  All values        curl '{base}/api/v1/values?prefix=acme-dairy/plant-a/packaging'
  Work orders       curl {base}/api/v1/production/work-orders
  Machine states    curl {base}/api/v1/production/states
  OEE, line 1       curl '{base}/api/v1/production/oee?asset={filler}&period=hour'
  Downtimes         curl {base}/api/v1/production/downtimes
  Lots, genealogy   curl {base}/api/v1/production/lots
                    curl '{base}/api/v1/production/lots/PAL-F1-B4711/trace?direction=backward'
  Lab check (form)  curl -X POST -H 'content-type: application/json' \\
         -d '{{\"asset\": \"reception/silo-1\", \"values\": {{\"tanker\": \"AB-123\", \"fat\": 4.1, \"protein\": 3.4, \"temperature\": 3.9, \"antibiotics\": \"pass\"}}}}' \\
         {base}/api/v1/forms/milk-lab/entries
  Where a value came from
                    curl {base}/api/v1/lineage/{filler}/product_temperature
  Context of line 1 curl {base}/api/v1/context/acme-dairy/plant-a/packaging/line-1
  Live changes      curl -N '{base}/api/v1/stream/sse?prefix=acme-dairy/plant-a/packaging/line-1'
  History           curl '{base}/api/v1/history/aggregate?tag={filler}/speed&every=1m&fn=mean'
  Audit trail       curl {base}/api/v1/audit    (who changed what; `backplane audit verify data/audit`)
  Health, metrics   curl {base}/api/v1/health    curl {base}/metrics
  API description   {base}/api/v1/openapi.json
{opcua}
Samples are also written to data/samples.jsonl and stored in the historian (data/history);
export them with `backplane export --config examples/dairy.toml --data-dir data --model Filler
--from now-1h --to now --output fillers.csv`. Press Ctrl-C to stop."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers_seen(workers: Option<usize>) -> usize {
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inside = seen.clone();
        let code = run_blocking(workers, || async move {
            let n = tokio::runtime::Handle::current().metrics().num_workers();
            inside.store(n, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(code, ExitCode::SUCCESS);
        seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn the_runtime_has_the_workers_asked_for_and_else_one_per_cpu() {
        assert_eq!(workers_seen(Some(1)), 1);
        assert_eq!(workers_seen(Some(3)), 3);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            assert_eq!(workers_seen(None), cpus);
        }
    }
}
