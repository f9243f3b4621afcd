//! The one error every storage port answers with, so the use cases map a database failure to
//! UNAVAILABLE (retry) or INTERNAL in one place, whatever adapter is behind the port.

/// A storage failure, classified so callers can answer UNAVAILABLE (retry) or INTERNAL.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is overloaded; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a newer schema).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
}
