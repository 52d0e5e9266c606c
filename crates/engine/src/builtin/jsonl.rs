//! Sink kind `jsonl`: every sample and event as one JSON object per line
//! (format: `docs/payloads.md`), to a file or stdout. For debugging, tests and simple
//! integrations. Lines are written and flushed to the OS after every batch; there is no
//! fsync, so a power loss can cut the last lines.
//!
//! With `max_bytes`, the file is rotated when it grows past that size: the current file is
//! renamed to `<path>.1` (replacing an older one) and a new file started, so the sink never
//! holds more than about twice `max_bytes` on disk.

use std::path::PathBuf;

use backplane_config::Table;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use backplane_connector::payload::{EventPayload, SampleEncoder};
use backplane_connector::{ComponentError, Kind, Sink, SinkContext, SinkIo, SinkKind};

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Stdout,
    /// Relative paths are resolved against the gateway's data directory.
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct JsonlSettings {
    pub target: Target,
    pub max_bytes: Option<u64>,
}

/// The kind registered as `jsonl`.
#[derive(Debug)]
pub struct JsonlKind;

impl Kind for JsonlKind {
    type Settings = JsonlSettings;

    fn describe(&self) -> &'static str {
        "JSON lines to a file or stdout"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<JsonlSettings> {
        let path = table.required_str("path")?;
        let max_bytes = table.optional_u64("max_bytes");
        if max_bytes.is_some_and(|m| m < 4096) {
            table.error("max_bytes", "`max_bytes` must be at least 4096", None);
            return None;
        }
        let target = match path {
            "-" => Target::Stdout,
            "" => {
                table.error(
                    "path",
                    "`path` is empty",
                    Some("a file name, or \"-\" for stdout".into()),
                );
                return None;
            }
            p => Target::File(PathBuf::from(p)),
        };
        if target == Target::Stdout && max_bytes.is_some() {
            table.error("max_bytes", "`max_bytes` needs a file `path`", None);
        }
        Some(JsonlSettings { target, max_bytes })
    }
}

impl SinkKind for JsonlKind {
    /// Reads its settings, its feed, the topology: kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &JsonlSettings) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, JsonlSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        let settings = ctx.settings;
        let target = match &settings.target {
            Target::Stdout => Target::Stdout,
            Target::File(p) => Target::File(ctx.data_dir.join(p)),
        };
        Ok(Box::new(JsonlSink {
            target,
            max_bytes: settings.max_bytes,
        }))
    }
}

struct JsonlSink {
    target: Target,
    max_bytes: Option<u64>,
}

async fn open(path: &PathBuf) -> Result<(tokio::fs::File, u64), ComponentError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ComponentError::io(format!("jsonl: cannot create {}: {e}", dir.display())))?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| ComponentError::io(format!("jsonl: cannot open {}: {e}", path.display())))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}

impl Sink for JsonlSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let mut written = 0u64;
            let mut out: Box<dyn AsyncWrite + Unpin + Send> = match &self.target {
                Target::Stdout => Box::new(tokio::io::stdout()),
                Target::File(path) => {
                    let (file, len) = open(path).await?;
                    written = len;
                    Box::new(file)
                }
            };
            let mut buf = Vec::with_capacity(64 * 1024);
            let encoder = SampleEncoder::new(io.topology.clone());
            while let Some(batch) = io.recv().await {
                buf.clear();
                for sample in &batch.samples {
                    if encoder.write(sample, None, false, &mut buf) {
                        buf.push(b'\n');
                    }
                }
                for event in &batch.events {
                    serde_json::to_writer(&mut buf, &EventPayload::new(event))
                        .map_err(|e| ComponentError::protocol(format!("jsonl: encoding an event: {e}")))?;
                    buf.push(b'\n');
                }
                out.write_all(&buf)
                    .await
                    .map_err(|e| ComponentError::io(format!("jsonl: write failed: {e}")))?;
                out.flush()
                    .await
                    .map_err(|e| ComponentError::io(format!("jsonl: flush failed: {e}")))?;
                written += buf.len() as u64;
                if let (Target::File(path), Some(max)) = (&self.target, self.max_bytes)
                    && written >= max
                {
                    let rotated = PathBuf::from(format!("{}.1", path.display()));
                    tokio::fs::rename(path, &rotated).await.map_err(|e| {
                        ComponentError::io(format!("jsonl: rotating {}: {e}", path.display()))
                    })?;
                    let (file, len) = open(path).await?;
                    out = Box::new(file);
                    written = len;
                }
            }
            out.flush()
                .await
                .map_err(|e| ComponentError::io(format!("jsonl: flush failed: {e}")))?;
            Ok(())
        }
        .boxed()
    }
}
