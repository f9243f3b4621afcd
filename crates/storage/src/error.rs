//! Classifies database errors: an unreachable or overloaded database is UNAVAILABLE (the caller
//! retries and nothing was written); anything else is an internal error.

use iap_domain::ports::StorageError;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server did not answer (closed port, wrong host, timeout).
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The server answered but refused (authentication, missing database, bad URL).
    #[error("database refused the connection: {0}")]
    Refused(String),
}

impl ConnectError {
    pub(crate) fn from_db(err: DbErr) -> Self {
        match classify(err) {
            StorageError::Unavailable(m) => ConnectError::Unreachable(m),
            StorageError::Corrupt(m) | StorageError::Other(m) => ConnectError::Refused(m),
        }
    }
}

/// Maps a sea-orm error to the domain's storage error.
#[allow(
    clippy::needless_pass_by_value,
    reason = "shaped for `.map_err(classify)`"
)]
pub fn classify(err: DbErr) -> StorageError {
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_is_unavailable(e)
        }
        _ => false,
    };
    let message = one_line(&err.to_string());
    if unavailable {
        StorageError::Unavailable(message)
    } else if matches!(err, DbErr::Type(_) | DbErr::Json(_)) {
        StorageError::Corrupt(message)
    } else {
        StorageError::Other(message)
    }
}

fn sqlx_is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 08xxx connection exceptions, 57P0x shutdown / cannot connect now,
            // 53300 too many connections, 40001/40P01 serialization or deadlock (retry).
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "40001"
                || code == "40P01"
                || code == "5"
                || code == "6"
        }
        _ => false,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
