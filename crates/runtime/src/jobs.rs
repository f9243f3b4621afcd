//! The loop around a background job's `run_once`: a pass every interval until the shutdown,
//! the next pass at once when the last one had more work than it could take.

use std::future::Future;
use std::time::Duration;

use crate::Shutdown;

/// Runs `pass` until the shutdown. `pass` returns whether it left work behind (a full batch);
/// if so the next pass starts at once, otherwise after `interval`.
pub async fn repeat<F, Fut>(interval: Duration, shutdown: Shutdown, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let more = pass().await;
        if shutdown.is_triggered() {
            return;
        }
        if !more {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}
