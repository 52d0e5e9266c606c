//! Errors of the store.

use std::io;
use std::path::{Path, PathBuf};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused (disk full, permissions, missing directory, ...).
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file does not hold what the format says: a checksum or a structure is wrong.
    #[error("{}: corrupt: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    /// A file of the store in a format version this build does not read: written by an
    /// older or a newer Backplane. Refused rather than misread (see docs/historian.md,
    /// "Format versions").
    #[error(
        "{}: written in format version {found}, but this version of Backplane reads only version {expected} (see \"Format versions\" in docs/historian.md)",
        path.display()
    )]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// A write to a store opened for reading only.
    #[error("the store at {} is open read-only", path.display())]
    ReadOnly { path: PathBuf },
    /// A request the store cannot answer as asked (e.g. too many buckets).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        message: message.into(),
    }
}
