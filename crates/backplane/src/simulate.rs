//! `backplane simulate NAME`: runs one of the simulated devices the kinds offer
//! ([`Simulator`](backplane_connector::Simulator)) until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use backplane_connector::{Registry, SimulatorStart};

use crate::serve;

pub fn run(registry: &Registry, name: &str, listen: Option<SocketAddr>, data_dir: PathBuf) -> ExitCode {
    // The command line only accepts the names the registry offers.
    let Some(simulator) = backplane::kinds::simulator(registry, name) else {
        eprintln!("error: this build has no simulator `{name}`");
        return ExitCode::FAILURE;
    };
    serve::run_blocking(None, || async move {
        let listen = listen.unwrap_or(simulator.default_listen);
        let running = (simulator.start)(SimulatorStart { listen, data_dir }).await?;
        println!("{}; Ctrl-C stops it", running.banner);
        serve::shutdown_signal().await;
        running.stop();
        Ok(())
    })
}
