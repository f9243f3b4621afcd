//! The domain's policies these settings describe: how deliveries retry, how the inbox retries,
//! how reconciliation reads the stores' histories. Values are raised to their floors here, so the
//! use cases never see a zero where a zero would spin or stall.

use super::{DeliverySettings, RECONCILIATION, Settings};

impl DeliverySettings {
    /// How the notification inbox retries, from these settings.
    pub fn inbox_policy(&self) -> iap_domain::usecases::handle_notifications::InboxPolicy {
        use std::time::Duration;
        let base = Duration::from_millis(self.notification_backoff_base_ms.max(1));
        iap_domain::usecases::handle_notifications::InboxPolicy {
            lease: Duration::from_millis(self.notification_lease_ms.max(1_000)),
            backoff_base: base,
            backoff_max: Duration::from_millis(self.notification_backoff_max_ms).max(base),
        }
    }

    /// The delivery policy these settings describe.
    pub fn policy(&self) -> iap_domain::usecases::deliver::DeliveryPolicy {
        use std::time::Duration;
        iap_domain::usecases::deliver::DeliveryPolicy {
            max_attempts: self.max_attempts.max(1),
            call_deadline: Duration::from_millis(self.call_deadline_ms.max(1)),
            calls_per_attempt: self.calls_per_attempt.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
            lock_ttl: Duration::from_millis(self.lock_ttl_ms.max(100)),
        }
    }
}

impl Settings {
    /// The reconciliation job's timing from `[scheduler]` (and its hold from
    /// `[jobs.reconciliation]`).
    pub fn reconcile_policy(&self) -> iap_domain::usecases::reconcile::ReconcilePolicy {
        iap_domain::usecases::reconcile::ReconcilePolicy {
            first_lookback: std::time::Duration::from_secs(
                self.scheduler.reconcile_lookback_hours.saturating_mul(3600),
            ),
            overlap: std::time::Duration::from_millis(self.scheduler.reconcile_overlap_ms),
            hold: self.job(RECONCILIATION).hold,
        }
    }
}
