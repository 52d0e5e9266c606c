//! Errors of the log.

use std::io;
use std::path::{Path, PathBuf};

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The operating system refused (disk full, permissions, missing directory, ...). `op` says
    /// what the log was doing ("write record to", "fsync", ...), `path` on which file.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A reader name that is not a short slug (letters, digits, `-`, `_`; at most 64 characters).
    #[error("invalid reader name {name:?}: {reason}")]
    InvalidReaderName { name: String, reason: &'static str },
    /// The same reader name given twice to [`crate::Log::open`].
    #[error("reader {name:?} is given twice")]
    DuplicateReader { name: String },
    /// Options that cannot work (a zero segment size or fsync interval).
    #[error("invalid log options: {0}")]
    InvalidOptions(String),
    /// An append the log refuses whatever the state: `count` of 0, or a payload over
    /// [`crate::MAX_PAYLOAD`].
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The 64-bit sequence space is used up (only reachable with absurd `count`s).
    #[error("sequence numbers exhausted")]
    SequenceOverflow,
}

/// Why [`crate::Log::append`] did not append.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A reader with [`crate::Overflow::Block`] is at its quota; nothing was written. Wait for
    /// [`crate::Log::space`] and try again.
    #[error("buffer full: reader {reader:?} is at its quota (overflow policy: block)")]
    Full { reader: String },
    #[error(transparent)]
    Buffer(#[from] BufferError),
}

pub(crate) type Result<T> = std::result::Result<T, BufferError>;

/// Attaches what was being done, and on which file, to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| BufferError::Io {
            op,
            path: path.to_owned(),
            source,
        })
    }
}
