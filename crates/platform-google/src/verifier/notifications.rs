//! Real-time developer notifications decoded and authenticated, and the refunds they claim
//! checked against Google's voided purchases.

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::purchase::PurchaseProof;
use iap_domain::refunds::{RefundCause, RefundShare};
use iap_domain::{Platform, ProductId, RejectReason};

use iap_platform_common::{Page, collect_pages, sha256_hex};

use super::{GoogleApp, GoogleVerifier, rejected, string, subscription_ref};

/// Longest Pub/Sub message id accepted (they are decimal numbers of about 16 digits).
const MAX_MESSAGE_ID: usize = 64;

/// How far back Google lets `voidedpurchases.list` look (platforms/google.md §1.5).
const VOIDED_WINDOW: chrono::Duration = chrono::Duration::days(30);

impl GoogleVerifier {
    /// The voided purchases Google recorded in the last 30 days for one purchase token (and,
    /// when given, one order id).
    async fn voided_for(
        &self,
        google: &GoogleApp,
        token: &str,
        order: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        let to = Utc::now();
        // A minute inside Google's limit, so the clock of the request never crosses it.
        let from = to - VOIDED_WINDOW + chrono::Duration::minutes(1);
        collect_pages(|page| async move {
            let reply = google
                .api
                .voided_purchases(
                    &google.package,
                    from.timestamp_millis(),
                    to.timestamp_millis(),
                    page.as_deref(),
                )
                .await?;
            let items = reply["voidedPurchases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["purchaseToken"] == token)
                .filter(|v| order.is_none_or(|o| v["orderId"] == o))
                .cloned()
                .collect();
            let next = string(&reply["tokenPagination"]["nextPageToken"]);
            Ok(Page { items, next })
        })
        .await
    }
}

/// Real-time developer notifications, as Pub/Sub pushes them:
/// `{"message": {"data": base64(DeveloperNotification), "messageId" | "message_id", …},
/// "subscription": …}`. The message id is the inbox key. A one-time purchase is looked up at
/// Google before anything is granted (a notification only says that something changed); a voided
/// purchase is revoked under the id the notification names (the purchase token for one-time
/// products, found among a purchase's identities; the order id for subscriptions).
#[async_trait]
impl iap_domain::notifications::NotificationDecoder for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    async fn authenticate(
        &self,
        decoded: &iap_domain::notifications::DecodedNotification,
        authorization: Option<&str>,
    ) -> Result<(), StoreError> {
        let push = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .and_then(|app| app.push.clone());
        match push {
            Some(push) => push.verify(authorization).await,
            None => Ok(()),
        }
    }

    /// A voided purchase or SUBSCRIPTION_REVOKED is only a claim: anyone who can reach the push
    /// endpoint can write one (unless push authentication is on). Google's own record decides:
    /// the voided purchases list (refunds, chargebacks and revocations, one-time and
    /// subscription, of the last 30 days), and for a one-time product also productsv2 (a refund
    /// leaves `refundableQuantity` 0), since the list is known to miss some refunds.
    async fn confirm_refund(
        &self,
        decoded: &iap_domain::notifications::DecodedNotification,
    ) -> Result<iap_domain::notifications::RefundConfirmation, StoreError> {
        use iap_domain::notifications::{RefundConfirmation, StoreEvent};
        let StoreEvent::Refunded {
            store_transaction_id,
            revoked,
            subscription,
            ..
        } = &decoded.event
        else {
            return Ok(RefundConfirmation::Unconfirmed {
                reason: "not_a_refund",
                detail: "the notification claims no refund".into(),
            });
        };
        let google = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .ok_or_else(|| {
                StoreError::Misconfigured("no Google Play settings for the app".into())
            })?;
        // One-time: keyed by the token. Subscription void: the order id, with the token in the
        // reference. SUBSCRIPTION_REVOKED: the token.
        let token = subscription
            .as_ref()
            .and_then(|s| s.purchase_token.clone())
            .unwrap_or_else(|| store_transaction_id.clone());
        let order = (*store_transaction_id != token).then_some(store_transaction_id.as_str());
        let voided = self.voided_for(google, &token, order).await?;
        // A one-time purchase: how much of it Google refunded (quantity-based partial refunds
        // take back only their units). productsv2 also confirms a refund the list misses.
        let product_share = if subscription.is_none() {
            match google.api.product_v2(&google.package, &token).await {
                Ok(v2) => Some((
                    crate::voided::share_from_product(&v2),
                    string(&v2["orderId"]),
                )),
                // Google does not know the token: nothing of ours can be behind it.
                Err(StoreError::Rejected { .. }) if voided.is_empty() => {
                    return Ok(RefundConfirmation::Unconfirmed {
                        reason: "unknown_at_store",
                        detail: "Google does not know the purchase token".into(),
                    });
                }
                Err(StoreError::Rejected { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if !voided.is_empty() {
            // A subscription's token spans every period: a voided period is taken back by its
            // own order id, and the token is named only when the whole subscription was revoked
            // (platforms/google.md §1.5: with subscriptions, key on orderId).
            let mut store_keys = Vec::new();
            if subscription.is_none() || order.is_none() {
                store_keys.push(token.clone());
            }
            if subscription.is_none() || order.is_some() {
                store_keys.extend(voided.iter().filter_map(|v| string(&v["orderId"])));
            }
            store_keys.sort();
            store_keys.dedup();
            let share = match &product_share {
                Some((Some(share), _)) => *share,
                _ if subscription.is_some() => RefundShare::Whole,
                _ => crate::voided::share_from_records(&voided),
            };
            return Ok(RefundConfirmation::Confirmed {
                store_keys,
                revoked: *revoked || voided.iter().any(crate::voided::is_revocation),
                share,
                cause: crate::voided::cause(&voided),
            });
        }
        if let Some((Some(share), order_id)) = product_share {
            let mut store_keys = vec![token.clone()];
            store_keys.extend(order_id);
            return Ok(RefundConfirmation::Confirmed {
                store_keys,
                revoked: *revoked,
                share,
                cause: RefundCause::default(),
            });
        }
        Ok(RefundConfirmation::Unconfirmed {
            reason: "not_voided_at_store",
            detail: "Google lists no voided purchase for it in the last 30 days".into(),
        })
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use base64::Engine;
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed = |detail: &str| rejected(RejectReason::Malformed, "malformed", detail);
        let envelope: Value =
            serde_json::from_str(raw_body).map_err(|_| malformed("body is not JSON"))?;
        let message = &envelope["message"];
        let message_id = string(&message["messageId"])
            .or_else(|| string(&message["message_id"]))
            .ok_or_else(|| malformed("message.messageId is missing"))?;
        if message_id.len() > MAX_MESSAGE_ID || !message_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("message.messageId is not a Pub/Sub message id"));
        }
        let data = message["data"]
            .as_str()
            .ok_or_else(|| malformed("message.data is missing"))?;
        // The inbox key is the message id *and* what the message says: Pub/Sub redelivers the
        // same data under the same id (a duplicate), while a forged push that takes an id Google
        // will use later occupies only its own key and never shadows Google's delivery.
        let id = format!("{message_id}:{}", sha256_hex(data.as_bytes()));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| malformed("message.data is not base64"))?;
        let n: Value = serde_json::from_slice(&decoded)
            .map_err(|_| malformed("message.data is not a DeveloperNotification"))?;
        let package = n["packageName"].as_str().unwrap_or_default();
        let app_id = self
            .apps
            .iter()
            .find(|(_, a)| a.package == package)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                rejected(
                    RejectReason::BundleMismatch,
                    "package_not_configured",
                    format!("no app is configured for package {package:?}"),
                )
            })?;
        let event_at = match &n["eventTimeMillis"] {
            Value::String(s) => s.parse::<i64>().ok(),
            other => other.as_i64(),
        }
        .and_then(chrono::DateTime::from_timestamp_millis);
        let (kind, subject, event) = if let Some(one) = n.get("oneTimeProductNotification") {
            let token = string(&one["purchaseToken"]);
            let sku = string(&one["sku"]);
            let kind = format!("ONE_TIME_PRODUCT/{}", one["notificationType"]);
            let event = match (one["notificationType"].as_i64(), &token, &sku) {
                (Some(1), Some(token), Some(sku)) => StoreEvent::Purchased {
                    app_id: app_id.clone(),
                    proof: PurchaseProof::Google {
                        purchase_token: token.clone(),
                        product_id: ProductId::parse(sku.as_str())
                            .map_err(|e| malformed(&e.to_string()))?,
                        signed_data: None,
                    },
                    carried_order_id: None,
                },
                // CANCELED: a pending purchase dropped, or a paid one revoked; the store says
                // which.
                (Some(2), Some(token), Some(sku)) => StoreEvent::Recheck {
                    app_id: app_id.clone(),
                    proof: PurchaseProof::Google {
                        purchase_token: token.clone(),
                        product_id: ProductId::parse(sku.as_str())
                            .map_err(|e| malformed(&e.to_string()))?,
                        signed_data: None,
                    },
                },
                _ => StoreEvent::Ignored(format!("{kind}: not a type this version knows")),
            };
            (kind, token, event)
        } else if let Some(voided) = n.get("voidedPurchaseNotification") {
            let subscription = voided["productType"].as_i64() == Some(1);
            let key = if subscription {
                string(&voided["orderId"])
            } else {
                string(&voided["purchaseToken"])
            }
            .ok_or_else(|| malformed("voidedPurchaseNotification without its ids"))?;
            // `refundType` 2 (a quantity-based partial refund) is only the notification's word:
            // confirm_refund reads how much Google refunded from Google's own records.
            let event = StoreEvent::Refunded {
                platform: Platform::Google,
                share: RefundShare::Whole,
                cause: RefundCause::default(),
                store_transaction_id: key.clone(),
                revoked: false,
                subscription: if subscription {
                    string(&voided["purchaseToken"]).map(|token| subscription_ref(&app_id, token))
                } else {
                    None
                },
            };
            ("VOIDED_PURCHASE".to_owned(), Some(key), event)
        } else if let Some(sub) = n.get("subscriptionNotification") {
            // Every type only says the state changed (platforms/google.md §3): the refresh
            // reads subscriptionsv2 and applies what it says.
            let kind = format!("SUBSCRIPTION/{}", sub["notificationType"]);
            let token = string(&sub["purchaseToken"])
                .ok_or_else(|| malformed("subscriptionNotification.purchaseToken is missing"))?;
            let event = match sub["notificationType"].as_i64() {
                // SUBSCRIPTION_REVOKED: refunded or charged back; the latest period is taken
                // back now, then the subscription refreshed.
                Some(12) => StoreEvent::Refunded {
                    platform: Platform::Google,
                    share: RefundShare::Whole,
                    cause: RefundCause::default(),
                    store_transaction_id: token.clone(),
                    revoked: true,
                    subscription: Some(subscription_ref(&app_id, token.clone())),
                },
                _ => StoreEvent::SubscriptionChanged {
                    subscription: subscription_ref(&app_id, token.clone()),
                    paid: None,
                    carried_order_id: None,
                },
            };
            (kind, Some(token), event)
        } else if n.get("testNotification").is_some() {
            (
                "TEST".to_owned(),
                None,
                StoreEvent::Ignored("test notification".into()),
            )
        } else {
            (
                "UNKNOWN".to_owned(),
                None,
                StoreEvent::Ignored("a notification kind this version does not know".into()),
            )
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Google,
                notification_id: id,
                app_id: Some(app_id),
                notification_type: kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at,
            },
            event,
        })
    }
}
