//! `backplane audit verify`: checks an audit trail (the gateway's, from its configuration,
//! or a directory or exported file) and says where it is broken.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane_config::Plan;

/// Where the gateway of `plan` keeps its audit trail.
pub fn dir(plan: &Plan) -> PathBuf {
    plan.gateway.data_dir.join("audit")
}

/// Prints what verification found; exit code 0 only for an intact trail.
pub fn verify(path: &Path) -> ExitCode {
    match backplane_security::verify(path) {
        Ok(v) => {
            let head = v
                .head
                .as_ref()
                .map(|(seq, hash)| format!("last record {seq}, hash {hash}"))
                .unwrap_or_else(|| "no records".into());
            for (file, line, why) in &v.breaks {
                println!("{}:{line}: {why}", file.display());
            }
            if v.intact() {
                println!("intact: {} records in {} files; {head}", v.records, v.files);
                ExitCode::SUCCESS
            } else {
                println!(
                    "BROKEN: {} problems in {} records ({} files); {head}",
                    v.breaks.len(),
                    v.records,
                    v.files
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
