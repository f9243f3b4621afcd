//! Cursors and leases of the scheduler's singleton jobs. Adapter: `iap-storage`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::StorageError;

/// Cursors of the scheduler's singleton jobs (`job_state`), each with a lease so that among
/// many replicas one works a window at a time.
#[async_trait]
pub trait JobCursors: Send + Sync {
    /// Takes job `name` for `hold` unless another replica holds it. `Some(cursor)` when taken
    /// (the cursor is `None` on the first run), `None` when held elsewhere.
    async fn take_job(
        &self,
        name: &str,
        hold: Duration,
    ) -> Result<Option<Option<DateTime<Utc>>>, StorageError>;

    /// Moves the job's cursor to `cursor` and lets it go.
    async fn advance_job(&self, name: &str, cursor: DateTime<Utc>) -> Result<(), StorageError>;
}
