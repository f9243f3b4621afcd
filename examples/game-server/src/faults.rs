//! Test knobs that make the server misbehave the way real game servers do, so the delivery
//! service's retries and exactly-once bookkeeping can be exercised. Shared with the running
//! service through an `Arc` and changeable at any time; all off by default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tonic::Code;

/// Faults injected into `GrantItems` (the delay applies to revokes too).
#[derive(Debug, Default)]
pub struct Faults {
    /// Grants to refuse before touching the ledger, and with which code.
    fail_before_apply: Mutex<Option<(u32, Code)>>,
    /// Grants to apply durably whose reply is then replaced by an error (a lost acknowledgement).
    fail_after_apply: Mutex<Option<(u32, Code)>>,
    /// Milliseconds to wait before answering.
    reply_delay_ms: AtomicU64,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the next `count` grant calls with `code`, before anything is applied.
    pub fn fail_next_grants(&self, count: u32, code: Code) {
        *lock(&self.fail_before_apply) = (count > 0).then_some((count, code));
    }

    /// Applies the next `count` grants durably, then answers `code` instead of OK: the caller
    /// sees a failure although the effect happened, as when an acknowledgement is lost.
    pub fn lose_next_grant_acks(&self, count: u32, code: Code) {
        *lock(&self.fail_after_apply) = (count > 0).then_some((count, code));
    }

    /// Waits `delay` before every answer, after the effect (if any) is durable: a caller whose
    /// deadline is shorter sees a timeout for a grant that was applied.
    pub fn set_reply_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.reply_delay_ms.store(millis, Ordering::Relaxed);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        self.fail_next_grants(0, Code::Ok);
        self.lose_next_grant_acks(0, Code::Ok);
        self.set_reply_delay(Duration::ZERO);
    }

    /// Consumes one planned failure-before-apply, if any.
    pub(crate) fn take_grant_failure(&self) -> Option<Code> {
        take(&self.fail_before_apply)
    }

    /// Consumes one planned lost acknowledgement, if any.
    pub(crate) fn take_lost_ack(&self) -> Option<Code> {
        take(&self.fail_after_apply)
    }

    /// The delay to wait before answering.
    pub(crate) fn reply_delay(&self) -> Duration {
        Duration::from_millis(self.reply_delay_ms.load(Ordering::Relaxed))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain counters, valid whatever a panicking holder was doing.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(plan: &Mutex<Option<(u32, Code)>>) -> Option<Code> {
    let mut plan = lock(plan);
    let (remaining, code) = (*plan)?;
    *plan = (remaining > 1).then_some((remaining - 1, code));
    Some(code)
}
