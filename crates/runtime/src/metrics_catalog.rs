//! Every metric the processes emit, with its kind, labels and meaning. The Prometheus page
//! carries these descriptions as `# HELP`, `docs/operations-metrics` is written from them, and
//! tests check that the code emits no name missing here and that the Grafana dashboard and the
//! alert rules use no name that is not here.
//!
//! Labels are bounded sets (store, state, endpoint, outcome, gRPC method and code); no user,
//! order or purchase id is ever a label.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; read with `rate()`.
    Counter,
    /// A current value.
    Gauge,
    /// A distribution (`_bucket`, `_sum`, `_count` series); read with `histogram_quantile()`.
    Histogram,
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// What it measures, for `# HELP` and the docs.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind,
        labels,
        help,
    }
}

use MetricKind::{Counter, Gauge, Histogram};

/// Every metric, grouped by what it watches.
pub const METRICS: &[MetricSpec] = &[
    // gRPC servers
    metric(
        "iap_grpc_requests_total",
        Counter,
        &["method", "code"],
        "gRPC calls served, by method and status code.",
    ),
    metric(
        "iap_grpc_request_duration_seconds",
        Histogram,
        &["method"],
        "gRPC call latency, by method.",
    ),
    metric(
        "iap_grpc_auth_refused_total",
        Counter,
        &["audience"],
        "gRPC calls refused for a missing or wrong bearer token, by audience (admin, service).",
    ),
    // orders
    metric(
        "iap_orders_created_total",
        Counter,
        &["platform", "existing"],
        "CreateOrder calls that returned an order (existing=true: an idempotent retry).",
    ),
    metric(
        "iap_orders",
        Gauge,
        &["state", "platform"],
        "Orders in each open state (CREATED, PAID, DELIVERING, DELIVERED, DEAD), by store; refreshed by the scheduler.",
    ),
    metric(
        "iap_orders_oldest_paid_age_seconds",
        Gauge,
        &["state", "platform"],
        "Seconds since the oldest order in each paid open state was paid (0 when none); DELIVERED for Google is the acknowledgement clock.",
    ),
    metric(
        "iap_orders_undelivered",
        Gauge,
        &[],
        "Orders PAID or DELIVERING: paid, not yet granted.",
    ),
    metric(
        "iap_orders_undelivered_oldest_age_seconds",
        Gauge,
        &[],
        "Seconds since the oldest paid-but-undelivered order was paid (0 when none).",
    ),
    metric(
        "iap_orders_unconfirmed",
        Gauge,
        &[],
        "Orders DELIVERED but not yet confirmed (consumed/acknowledged) at the store.",
    ),
    metric(
        "iap_orders_unconfirmed_oldest_age_seconds",
        Gauge,
        &[],
        "Seconds since the oldest delivered-but-unconfirmed order was delivered (0 when none).",
    ),
    metric(
        "iap_gauges_refreshed_timestamp_seconds",
        Gauge,
        &[],
        "Unix time of the scheduler's last successful gauge refresh; stale means the scheduler or its database is down.",
    ),
    // verification
    metric(
        "iap_verifications_total",
        Counter,
        &["store", "result"],
        "VerifyPurchase outcomes by store: recorded, already_recorded, the rejection reason (SIGNATURE_INVALID, SANDBOX_NOT_ALLOWED, …), or IDENTIFIER_INVALID.",
    ),
    metric(
        "iap_store_misconfigured_total",
        Counter,
        &["store"],
        "VerifyPurchase calls refused because of our own store settings (STORE_MISCONFIGURED, STORE_NOT_CONFIGURED); the client keeps the purchase open.",
    ),
    metric(
        "iap_recorded_for_owner_total",
        Counter,
        &["store"],
        "Purchases recorded for the user their store binding names rather than the caller (a player who switched accounts, another user's subscription period).",
    ),
    metric(
        "iap_repeat_trials_total",
        Counter,
        &["store"],
        "Free trials taken again by the same user or store account (Apple `appTransactionId`; granted and flagged).",
    ),
    metric(
        "iap_paid_quantity_differs_total",
        Counter,
        &["store"],
        "Purchases whose bound order asked for another quantity than the store was paid for; the order was paid, and granted, with the store's quantity.",
    ),
    metric(
        "iap_paid_quantity_over_max_total",
        Counter,
        &["store"],
        "Purchases of more units than the product's max_quantity: granted what was paid, counted for review.",
    ),
    metric(
        "iap_compensations_matched_total",
        Counter,
        &["store"],
        "Store purchases recorded against support's earlier compensation (by order, or same user and product within the window) instead of granted again.",
    ),
    metric(
        "iap_refunded_before_redemption_total",
        Counter,
        &["store"],
        "Redemptions refused because the store had refunded or revoked the purchase before it reached us (a refund mark).",
    ),
    metric(
        "iap_refund_marks_total",
        Counter,
        &["store", "source"],
        "Refunds for purchases not redeemed here, marked so that their later redemption is refused; source: notification, reconciliation or verification (the store answered refunded).",
    ),
    metric(
        "iap_huawei_already_consumed_total",
        Counter,
        &["refunded"],
        "Huawei purchases the Order service called already consumed or confirmed (code 9), checked against the cancelled lists before their signed client data stood for a payment; refunded: whether a refund was found. A rise in purchases never recorded here means an app consumes before its server verified.",
    ),
    // delivery
    metric(
        "iap_deliveries_total",
        Counter,
        &["result"],
        "Grant attempts by result: granted, retry, dead.",
    ),
    metric(
        "iap_delivery_latency_seconds",
        Histogram,
        &["platform"],
        "Seconds from payment recorded to the game server's acknowledgement.",
    ),
    metric(
        "iap_grant_calls_total",
        Counter,
        &[],
        "GrantItems calls made to the game server.",
    ),
    metric(
        "iap_grant_call_seconds",
        Histogram,
        &[],
        "GrantItems call latency.",
    ),
    metric(
        "iap_grant_duplicate_acks_total",
        Counter,
        &[],
        "GrantItems answers saying the grant id was already granted (a retry after a lost answer).",
    ),
    metric(
        "iap_game_server_refused_total",
        Counter,
        &["call"],
        "Game server calls (GrantItems, RevokeItems, UpdateSubscription) refused as UNAUTHENTICATED or PERMISSION_DENIED: auth.game_server_token does not match what the game server expects; retries cannot fix it.",
    ),
    metric(
        "iap_game_ack_reference_shortened_total",
        Counter,
        &["call"],
        "Game server references longer than 255 bytes, kept as their first bytes and the SHA-256 of the whole (the grant or revocation stands).",
    ),
    metric(
        "iap_delivery_fenced_total",
        Counter,
        &[],
        "Grants whose result was discarded because another worker had claimed the order since (the attempt fence).",
    ),
    metric(
        "iap_delivery_held_elsewhere_total",
        Counter,
        &[],
        "Deliver calls that found another worker holding the order's lock.",
    ),
    metric(
        "iap_delivery_lock_unavailable_total",
        Counter,
        &[],
        "Deliveries and revocations that went on without the Redis lock because Redis was unreachable (the database fence alone).",
    ),
    metric(
        "iap_delivery_lock_lost_total",
        Counter,
        &[],
        "Redis locks lost while a game server call ran (the database fence still decides).",
    ),
    metric(
        "iap_store_confirmations_total",
        Counter,
        &["store", "result"],
        "Store confirmations (Google consume/acknowledge, Huawei confirm) by result: ok, error.",
    ),
    metric(
        "iap_revoke_calls_total",
        Counter,
        &[],
        "RevokeItems calls made to the game server.",
    ),
    metric(
        "iap_revocations_total",
        Counter,
        &[],
        "Orders moved to REFUNDED or REVOKED.",
    ),
    metric(
        "iap_partial_revocations_total",
        Counter,
        &["outcome"],
        "Partial refunds (Google quantity-based, Apple prorated) acted on, by outcome: revoked (units taken back, the order stays delivered), already_revoked (a repeat: nothing new).",
    ),
    metric(
        "iap_refund_reversals_total",
        Counter,
        &["store", "outcome"],
        "Reversed refunds (Apple REFUND_REVERSED of a one-time purchase) by outcome: restored (granted again as a new order), not_refunded (a replay: nothing more), mark_lifted (reversed before redemption), not_recorded.",
    ),
    metric(
        "iap_partially_revoked_units_total",
        Counter,
        &[],
        "Units taken back by partial refunds.",
    ),
    metric(
        "iap_job_passes_total",
        Counter,
        &["job", "outcome"],
        "Passes of each background job (order_sweep, entitlement_sync, notification_inbox, subscription_checks, reconciliation, gauges), by outcome: ok, or error when the database did not answer.",
    ),
    metric(
        "iap_sweep_orders_total",
        Counter,
        &[],
        "Due orders reserved by the order sweep, wherever it runs (in iap-delivery, or in iap-scheduler handing them to iap-delivery).",
    ),
    // subscriptions and reconciliation
    metric(
        "iap_subscription_transitions_total",
        Counter,
        &["store", "to"],
        "Subscriptions whose state changed on a refresh, by store and new state (active, grace, billing_retry, on_hold, paused, expired, revoked, replaced).",
    ),
    metric(
        "iap_subscription_updates_declined_total",
        Counter,
        &[],
        "UpdateSubscription calls the game server answered UNIMPLEMENTED (it reads entitlements from grants alone).",
    ),
    metric(
        "iap_reconciled_total",
        Counter,
        &["store", "kind"],
        "What reconciliation found that the live path missed: notifications recovered from the store's history, voided purchases revoked.",
    ),
    // stores
    metric(
        "iap_store_requests_total",
        Counter,
        &["store", "endpoint", "outcome"],
        "Calls to the stores' server APIs by endpoint and outcome: ok, rejected, rate_limited, unavailable, misconfigured.",
    ),
    metric(
        "iap_store_request_seconds",
        Histogram,
        &["store", "endpoint"],
        "Store server API call latency (retries and token refreshes included).",
    ),
    metric(
        "iap_store_rate_limited_total",
        Counter,
        &["store", "endpoint"],
        "Store API calls that met HTTP 429 at least once.",
    ),
    metric(
        "iap_store_token_refreshes_total",
        Counter,
        &["store"],
        "OAuth access tokens fetched for a store API.",
    ),
    // notifications
    metric(
        "iap_notifications_received_total",
        Counter,
        &["store", "outcome"],
        "Store notifications authenticated at the HTTP receiver: stored, duplicate.",
    ),
    metric(
        "iap_notifications_refused_total",
        Counter,
        &["store"],
        "Store notifications refused at the HTTP receiver (not authentic, or an unauthenticated push).",
    ),
    metric(
        "iap_notifications_processed_total",
        Counter,
        &["store"],
        "Stored notifications processed for good.",
    ),
    metric(
        "iap_notifications_rejected_total",
        Counter,
        &["store", "reason"],
        "Stored notifications rejected without effect: the store did not confirm the refund, revocation or purchase they claim (forged or stale pushes).",
    ),
    metric(
        "iap_notification_lag_seconds",
        Histogram,
        &["store"],
        "Seconds from a notification's receipt to the end of its processing.",
    ),
    metric(
        "iap_notifications_pending",
        Gauge,
        &[],
        "Notifications stored and not yet processed.",
    ),
    metric(
        "iap_notifications_pending_oldest_age_seconds",
        Gauge,
        &[],
        "Seconds since the oldest unprocessed notification was received (0 when none).",
    ),
    // unclaimed purchases
    metric(
        "iap_unclaimed_purchases",
        Gauge,
        &["store"],
        "Paid purchases no order or user could be found for, kept unclaimed and neither claimed nor refunded, by store; refreshed by the scheduler.",
    ),
    metric(
        "iap_unclaimed_purchases_oldest_age_seconds",
        Gauge,
        &["store"],
        "Seconds since the oldest open unclaimed purchase was first kept (0 when none), by store.",
    ),
    metric(
        "iap_unclaimed_purchases_kept_total",
        Counter,
        &["store"],
        "Paid purchases kept unclaimed (each once, however often the store reports it).",
    ),
    metric(
        "iap_unclaimed_purchases_claimed_total",
        Counter,
        &["store"],
        "Unclaimed purchases granted to a user by an operator's ClaimUnclaimedPurchase.",
    ),
    // emulator
    metric(
        "iap_emulator_requests_total",
        Counter,
        &["route"],
        "Requests served by iap-emulator, by route.",
    ),
];

/// The metric named `name`, if there is one. Histogram series (`_bucket`, `_sum`, `_count`)
/// resolve to their histogram.
pub fn find(name: &str) -> Option<&'static MetricSpec> {
    METRICS.iter().find(|m| m.name == name).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find_map(|base| {
                METRICS
                    .iter()
                    .find(|m| m.name == base && m.kind == Histogram)
            })
    })
}

/// Registers every description with the installed recorder, so `/metrics` carries `# HELP`.
pub fn describe_all() {
    for spec in METRICS {
        match spec.kind {
            Counter => metrics::describe_counter!(spec.name, spec.help),
            Gauge => metrics::describe_gauge!(spec.name, spec.help),
            Histogram => {
                metrics::describe_histogram!(spec.name, metrics::Unit::Seconds, spec.help);
            }
        }
    }
}
