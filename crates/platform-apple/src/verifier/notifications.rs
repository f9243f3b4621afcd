//! App Store Server Notifications V2 decoded into the domain's store events.

use iap_domain::ports::StoreError;
use iap_domain::purchase::PurchaseProof;
use iap_domain::refunds::RefundShare;
use iap_domain::subscriptions::SubscriptionRef;
use iap_domain::{Platform, ProductId, ProductKind, RejectReason};

use crate::jws;
use crate::model::TransactionPayload;

use super::{AppleVerifier, chrono_from_ms};

/// App Store Server Notifications V2: `{"signedPayload": JWS}`, verified like a transaction
/// (chain to a trusted root, Apple OIDs, validity at `signedDate`), for the configured app whose
/// bundle id it names; production notifications must also carry the configured `appAppleId`.
/// The transaction inside is verified again when the event is acted on.
#[async_trait::async_trait]
impl iap_domain::notifications::NotificationDecoder for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed =
            |detail: String| StoreError::rejected(RejectReason::Malformed, "malformed", detail);
        let body: serde_json::Value = serde_json::from_str(raw_body)
            .map_err(|e| malformed(format!("body is not JSON: {e}")))?;
        let signed = body["signedPayload"]
            .as_str()
            .ok_or_else(|| malformed("signedPayload is missing".into()))?;
        // Which app: the bundle id inside, read before verification only to pick the trust.
        let claimed = crate::jws::peek_payload(signed).map_err(StoreError::from)?;
        let bundle = claimed["data"]["bundleId"]
            .as_str()
            .or_else(|| claimed["summary"]["bundleId"].as_str())
            .unwrap_or_default()
            .to_owned();
        let (app_id, app) = self
            .apps
            .iter()
            .find(|(_, a)| a.bundle_id == bundle)
            .ok_or_else(|| {
                StoreError::rejected(
                    RejectReason::BundleMismatch,
                    "bundle_not_configured",
                    format!("no app is configured for bundle {bundle:?}"),
                )
            })?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let verified =
            jws::verify::<crate::model::NotificationPayload>(signed, &app.trust, now_ms)?;
        let n = verified.payload;
        let kind = n.notification_type.clone().unwrap_or_default();
        let full_kind = match &n.subtype {
            Some(subtype) => format!("{kind}/{subtype}"),
            None => kind.clone(),
        };
        let id = n
            .notification_uuid
            .clone()
            .ok_or_else(|| malformed("notificationUUID is missing".into()))?;
        let data = n.data.clone().unwrap_or_default();
        // As Apple's library does: a Production notification must name this app's Apple id, and
        // one that names none is not ours either.
        if data.environment.as_deref() == Some("Production")
            && data.app_apple_id != Some(app.app_apple_id)
        {
            return Err(StoreError::rejected(
                RejectReason::BundleMismatch,
                "app_apple_id_mismatch",
                match data.app_apple_id {
                    Some(found) => format!("the notification is for appAppleId {found}"),
                    None => "the Production notification carries no appAppleId".into(),
                },
            ));
        }
        // The transaction it is about (verified in full when acted on; here only its ids).
        let transaction = match &data.signed_transaction_info {
            Some(jws) => Some(
                jws::verify::<TransactionPayload>(jws, &app.trust, now_ms)
                    .map_err(StoreError::from)?
                    .payload,
            ),
            None => None,
        };
        let subject = transaction.as_ref().and_then(|t| t.transaction_id.clone());
        let environment = data
            .environment
            .as_deref()
            .and_then(crate::model::environment);
        // The subscription a transaction belongs to, when it is an auto-renewable one.
        let subscription = transaction
            .as_ref()
            .filter(|t| t.kind() == Some(ProductKind::AutoRenewable))
            .and_then(|t| {
                Some(SubscriptionRef {
                    app_id: app_id.clone(),
                    platform: Platform::Apple,
                    key: t.original_transaction_id.clone()?,
                    product_id: t
                        .product_id
                        .as_deref()
                        .and_then(|p| ProductId::parse(p).ok()),
                    purchase_token: None,
                    environment,
                    receipt: None,
                })
            });
        let carried = transaction
            .as_ref()
            .and_then(|t| t.app_account_token.as_ref())
            .map(|s| s.to_ascii_lowercase());
        let paid = data
            .signed_transaction_info
            .clone()
            .map(iap_domain::purchase::PurchaseProof::AppleSignedTransaction);
        // Every type and subtype of platforms/apple.md §3 has a handling here.
        let event = match (kind.as_str(), &transaction, subscription) {
            ("TEST", _, _) => StoreEvent::Ignored("test notification".into()),
            // A paid charge of a consumable, non-consumable or non-renewing product: granted
            // even if the client never reported it. The signed transaction inside is the state
            // at the time Apple sent it; notifications arrive late and out of order, so where
            // the app has API credentials the charge is checked against Apple's current state
            // (Get Transaction Info) when it is acted on, and one refunded meanwhile is refused.
            ("ONE_TIME_CHARGE", Some(t), _) => StoreEvent::Purchased {
                app_id: app_id.clone(),
                proof: match (&app.api, &t.transaction_id) {
                    (Some(_), Some(id)) => PurchaseProof::AppleTransactionId(id.clone()),
                    _ => paid.ok_or_else(|| malformed("no signedTransactionInfo".into()))?,
                },
                carried_order_id: carried,
            },
            // Subscription life cycle: the store's current status decides (a refresh grants a
            // new period once, keyed by its transaction; grace, retry and expiry change access).
            (
                "SUBSCRIBED"
                | "DID_RENEW"
                | "OFFER_REDEEMED"
                | "DID_CHANGE_RENEWAL_PREF"
                | "DID_CHANGE_RENEWAL_STATUS"
                | "DID_FAIL_TO_RENEW"
                | "GRACE_PERIOD_EXPIRED"
                | "EXPIRED"
                | "PRICE_INCREASE"
                | "RENEWAL_EXTENDED"
                | "REFUND_REVERSED",
                Some(_),
                Some(subscription),
            ) => StoreEvent::SubscriptionChanged {
                subscription,
                paid: paid.filter(|_| {
                    matches!(kind.as_str(), "SUBSCRIBED" | "DID_RENEW" | "OFFER_REDEEMED")
                }),
                carried_order_id: carried,
            },
            ("REFUND" | "REVOKE", Some(t), subscription) => StoreEvent::Refunded {
                platform: Platform::Apple,
                store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                revoked: kind == "REVOKE",
                // A prorated refund of a consumable bought several at a time takes back its
                // share of the units; a subscription period is one unit and goes back whole.
                share: if subscription.is_none() {
                    crate::model::refund_share(t, app.rounding)
                } else {
                    RefundShare::Whole
                },
                cause: crate::model::refund_cause(t),
                subscription,
            },
            ("CONSUMPTION_REQUEST", Some(t), _) => StoreEvent::ConsumptionRequested {
                app_id: app_id.clone(),
                store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                environment: t.environment().unwrap_or(iap_domain::Environment::Production),
                reason: data.consumption_request_reason,
            },
            ("REFUND_DECLINED", _, _) => {
                StoreEvent::Ignored("REFUND_DECLINED: Apple kept the charge; nothing changes".into())
            }
            // A one-time purchase paid again: the signed transaction (Apple's word, its chain
            // verified above) must no longer carry the revocation; a subscription's reversal
            // is applied by the refresh above.
            ("REFUND_REVERSED", Some(t), None) if t.revocation_date.is_none() => {
                StoreEvent::RefundReversed {
                    platform: Platform::Apple,
                    store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                }
            }
            ("REFUND_REVERSED", _, _) => StoreEvent::Ignored(
                "REFUND_REVERSED: the signed transaction still carries its revocation; nothing is restored".into(),
            ),
            ("RENEWAL_EXTENSION", _, _) => StoreEvent::Ignored(format!(
                "{full_kind}: a mass extension's summary; each extended subscription is refreshed on its own notification or check"
            )),
            (
                "EXTERNAL_PURCHASE_TOKEN" | "METADATA_UPDATE" | "MIGRATION" | "PRICE_CHANGE"
                | "RESCIND_CONSENT",
                _,
                _,
            ) => StoreEvent::Ignored(format!(
                "{full_kind}: external purchase, Advanced Commerce or consent flow, not used here"
            )),
            _ => StoreEvent::Ignored(format!(
                "{full_kind}: no transaction this version acts on"
            )),
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Apple,
                notification_id: id,
                app_id: Some(app_id.clone()),
                notification_type: full_kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at: n.signed_date.and_then(chrono_from_ms),
            },
            event,
        })
    }
}
