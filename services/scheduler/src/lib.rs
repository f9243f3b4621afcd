//! iap-scheduler: sweeps, store reconciliation, subscription renewals and refunds.
