//! The milk reception's lab analyser (`files-lab`), for the demo: every [`EVERY`] (and once
//! at start) it analyses a sample of each silo and drops the result as a CSV the way such
//! instruments write them: semicolons, decimal commas, a local time in Europe/Berlin:
//!
//! ```text
//! sampled_at;silo;fat_pct;protein_pct;somatic_cells
//! 05.12.2026 11:15:30;silo-1;3,92;3,41;182000
//! 05.12.2026 11:15:30;silo-2;4,05;3,38;210000
//! ```
//!
//! Each file is written as `<name>.part` and renamed into place when complete.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::task::JoinHandle;

/// The inbox, relative to the gateway's data directory (examples/dairy.toml's `path`).
pub const LAB_INBOX: &str = "lab-inbox";
/// How often a sample is analysed.
pub const EVERY: Duration = Duration::from_secs(30);
/// The header of every file.
pub const HEADER: &str = "sampled_at;silo;fat_pct;protein_pct;somatic_cells";

/// The analyser's readings: a deterministic random walk per silo.
#[derive(Debug)]
pub struct Lab {
    rng: u64,
    /// Per silo: fat %, protein %, somatic cells per mL.
    silos: [(f64, f64, f64); 2],
    seq: u64,
}

impl Default for Lab {
    fn default() -> Lab {
        Lab {
            rng: 7,
            silos: [(3.9, 3.4, 180_000.0), (4.05, 3.35, 210_000.0)],
            seq: 0,
        }
    }
}

impl Lab {
    fn step(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 2001) as f64 / 1000.0 - 1.0
    }

    /// The next file: its name and CSV text, sampled at `local` (already formatted).
    pub fn next_file(&mut self, local: &str) -> (String, String) {
        self.seq += 1;
        let mut text = format!("{HEADER}\n");
        for i in 0..self.silos.len() {
            let (df, dp, dc) = (self.step(), self.step(), self.step());
            let silo = &mut self.silos[i];
            silo.0 = (silo.0 + 0.03 * df).clamp(3.0, 5.0);
            silo.1 = (silo.1 + 0.02 * dp).clamp(2.8, 3.8);
            silo.2 = (silo.2 + 8_000.0 * dc).clamp(80_000.0, 400_000.0);
            let comma = |x: f64| format!("{x:.2}").replace('.', ",");
            text.push_str(&format!(
                "{local};silo-{};{};{};{}\n",
                i + 1,
                comma(silo.0),
                comma(silo.1),
                silo.2.round() as u64
            ));
        }
        (format!("lab-{:06}.csv", self.seq), text)
    }
}

/// Starts the analyser writing into `inbox` (created if missing).
pub fn spawn_lab_analyser(inbox: PathBuf) -> io::Result<JoinHandle<()>> {
    std::fs::create_dir_all(&inbox)?;
    let zone = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
    Ok(tokio::spawn(async move {
        // Numbered after what an earlier run left, so a restarted demo never overwrites.
        let count = |dir: &std::path::Path| {
            std::fs::read_dir(dir).map_or(0, |d| {
                d.filter(|e| e.as_ref().is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_file())))
                    .count() as u64
            })
        };
        let mut lab = Lab {
            seq: count(&inbox) + count(&inbox.join("done")),
            ..Lab::default()
        };
        let mut ticker = tokio::time::interval(EVERY);
        loop {
            ticker.tick().await;
            let local = jiff::Timestamp::now()
                .to_zoned(zone.clone())
                .strftime("%d.%m.%Y %H:%M:%S")
                .to_string();
            let (name, text) = lab.next_file(&local);
            let part = inbox.join(format!("{name}.part"));
            let written = async {
                tokio::fs::write(&part, text).await?;
                tokio::fs::rename(&part, inbox.join(&name)).await
            };
            if let Err(e) = written.await {
                tracing::warn!(error = %e, inbox = %inbox.display(), "lab analyser simulator: cannot drop its file");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_holds_one_row_per_silo_in_the_instrument_format() {
        let mut lab = Lab::default();
        let (name, text) = lab.next_file("05.12.2026 11:15:30");
        assert_eq!(name, "lab-000001.csv");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], HEADER);
        assert!(
            lines[1].starts_with("05.12.2026 11:15:30;silo-1;3,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("05.12.2026 11:15:30;silo-2;4,"),
            "{}",
            lines[2]
        );
        assert_eq!(lab.next_file("x").0, "lab-000002.csv");
    }
}
