//! Huawei IAP server notifications v2 decoded into the domain's store events, and the refunds
//! they claim checked against the cancelled lists.

use async_trait::async_trait;
use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseProof, SignedData};
use iap_domain::subscriptions::SubscriptionRef;
use iap_domain::{Platform, ProductId, RejectReason};

use iap_platform_common::sha256_hex;

use crate::api::{Site, response_code};
use crate::signature::PSS;

use super::purchase_data::signed_json;
use super::{HuaweiVerifier, number, refusal, rejected, string};

/// Huawei IAP server notifications v2: `{version: "v2", eventType: "ORDER" | "SUBSCRIPTION",
/// notifyTime, applicationId, orderNotification | subNotification}`. ORDER events are unsigned,
/// so they are only a hint: a payment (type 1) is re-queried with the Order service, whose signed
/// answer becomes the proof; a refund (type 2) is a claim the cancelled list must confirm. There
/// is no event id, so the inbox key is the event and notification type with a digest of the body:
/// Huawei's resend of the same event is a duplicate, and a forged event never occupies the key of
/// a real one.
#[async_trait]
impl iap_domain::notifications::NotificationDecoder for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    /// An ORDER refund event is unsigned: anyone can send one. A subscription CANCEL is signed,
    /// but may be replayed. Either is acted on only when the Order service's cancelled list
    /// (refunds, chargebacks, revocations; one-time products and subscriptions) shows it.
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
        let huawei = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .ok_or_else(|| StoreError::Misconfigured("no Huawei settings for the app".into()))?;
        // ORDER refund: keyed by the purchase token. Subscription CANCEL: by the order id.
        let (token, order) = match subscription {
            Some(s) => (
                s.purchase_token.clone().unwrap_or_default(),
                Some(store_transaction_id.as_str()),
            ),
            None => (store_transaction_id.clone(), None),
        };
        let cancelled = self.cancelled_for(huawei, &token, order).await?;
        if cancelled.is_empty() {
            return Ok(RefundConfirmation::Unconfirmed {
                reason: "not_cancelled_at_store",
                detail: "Huawei's cancelled list shows no refund for it in the last 30 days".into(),
            });
        }
        // A subscription's token spans its renewals: a refunded period is taken back by its own
        // order id only. A one-time purchase is known by both.
        let mut store_keys = Vec::new();
        for c in &cancelled {
            store_keys.extend(string(&c["orderId"]));
            if subscription.is_none() {
                store_keys.extend(string(&c["purchaseToken"]));
            }
        }
        store_keys.sort();
        store_keys.dedup();
        Ok(RefundConfirmation::Confirmed {
            store_keys,
            // cancelledReason 5 fraud, 6 chargeback.
            revoked: *revoked
                || cancelled
                    .iter()
                    .any(|c| matches!(number(&c["cancelledReason"]), Some(5 | 6))),
            share: iap_domain::refunds::RefundShare::Whole,
            cause: iap_domain::refunds::RefundCause::default(),
        })
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed = |detail: &str| rejected(RejectReason::Malformed, "malformed", detail);
        let body: Value =
            serde_json::from_str(raw_body).map_err(|_| malformed("body is not JSON"))?;
        let application = string(&body["applicationId"]).unwrap_or_default();
        let (app_id, app) = self
            .apps
            .iter()
            .find(|(_, a)| a.agc_app_id == application)
            .ok_or_else(|| {
                rejected(
                    RejectReason::BundleMismatch,
                    "app_not_configured",
                    format!("no app is configured for Huawei application {application:?}"),
                )
            })?;
        let event_type = string(&body["eventType"]).unwrap_or_default();
        let event_at =
            number(&body["notifyTime"]).and_then(chrono::DateTime::from_timestamp_millis);
        let (id, kind, subject, event) = match event_type.as_str() {
            "ORDER" => {
                let order = &body["orderNotification"];
                let token = string(&order["purchaseToken"])
                    .ok_or_else(|| malformed("orderNotification.purchaseToken is missing"))?;
                let product = string(&order["productId"])
                    .ok_or_else(|| malformed("orderNotification.productId is missing"))?;
                let kind = number(&order["notificationType"]).unwrap_or(-1);
                let event = match kind {
                    1 => 'paid: {
                        // Ask the Order service; its signed answer is the proof.
                        let reply = app
                            .api
                            .verify_order(&token, &product, app.prefer_pss, Site::HuaweiId)
                            .await?;
                        if response_code(&reply) == "9" {
                            // Confirmed already: it was delivered (we confirm only after the
                            // grant). A resent event must still be answered 200.
                            break 'paid StoreEvent::Ignored(
                                "ORDER/1: the purchase is already confirmed".into(),
                            );
                        }
                        if response_code(&reply) != "0" {
                            return Err(refusal(
                                &response_code(&reply),
                                reply["responseMessage"].as_str().unwrap_or(""),
                            ));
                        }
                        let data = reply["purchaseTokenData"].as_str().unwrap_or("").to_owned();
                        let signature = reply["dataSignature"].as_str().unwrap_or("").to_owned();
                        let algorithm = string(&reply["signatureAlgorithm"])
                            .or_else(|| app.prefer_pss.then(|| PSS.to_owned()));
                        let store_data =
                            signed_json(&app.key, &data, &signature, algorithm.as_deref())?;
                        StoreEvent::Purchased {
                            app_id: app_id.clone(),
                            carried_order_id: string(&store_data["developerPayload"]),
                            proof: PurchaseProof::Huawei {
                                purchase_token: token.clone(),
                                product_id: ProductId::parse(product.as_str())
                                    .map_err(|e| malformed(&e.to_string()))?,
                                signed_data: SignedData { data, signature },
                                signature_algorithm: algorithm,
                            },
                        }
                    }
                    2 => StoreEvent::Refunded {
                        platform: Platform::Huawei,
                        store_transaction_id: token.clone(),
                        revoked: false,
                        subscription: None,
                        share: iap_domain::refunds::RefundShare::Whole,
                        cause: iap_domain::refunds::RefundCause::default(),
                    },
                    _ => {
                        StoreEvent::Ignored(format!("ORDER/{kind}: not a type this version knows"))
                    }
                };
                (
                    format!("order:{kind}:{}", sha256_hex(raw_body.as_bytes())),
                    format!("ORDER/{kind}"),
                    Some(token),
                    event,
                )
            }
            "SUBSCRIPTION" => {
                // Signed by Huawei; still only a hint of when to ask the Subscription service.
                let sub = &body["subNotification"];
                let status = sub["statusUpdateNotification"].as_str().unwrap_or_default();
                let algorithm = string(&sub["signatureAlgorithm"])
                    .or_else(|| app.prefer_pss.then(|| PSS.to_owned()));
                let inner = signed_json(
                    &app.key,
                    status,
                    sub["notificationSignature"].as_str().unwrap_or_default(),
                    algorithm.as_deref(),
                )?;
                let kind = number(&inner["notificationType"]).unwrap_or(-1);
                let token = string(&inner["purchaseToken"]).ok_or_else(|| {
                    malformed("statusUpdateNotification.purchaseToken is missing")
                })?;
                let subscription = string(&inner["subscriptionId"]).ok_or_else(|| {
                    malformed("statusUpdateNotification.subscriptionId is missing")
                })?;
                let order = string(&inner["orderId"]).unwrap_or_default();
                let reference = SubscriptionRef {
                    app_id: app_id.clone(),
                    platform: Platform::Huawei,
                    key: subscription.clone(),
                    product_id: string(&inner["productId"]).and_then(|p| ProductId::parse(p).ok()),
                    purchase_token: Some(token),
                    environment: None,
                    receipt: None,
                };
                let event = match kind {
                    // CANCEL: customer service refunded the subscription.
                    1 if !order.is_empty() => StoreEvent::Refunded {
                        platform: Platform::Huawei,
                        store_transaction_id: order,
                        revoked: false,
                        subscription: Some(reference),
                        share: iap_domain::refunds::RefundShare::Whole,
                        cause: iap_domain::refunds::RefundCause::default(),
                    },
                    // Every other type (platforms/huawei.md §4) only says the state changed.
                    _ => StoreEvent::SubscriptionChanged {
                        subscription: reference,
                        paid: None,
                        carried_order_id: None,
                    },
                };
                (
                    // The signed part decides what the event is; the envelope around it is not
                    // signed, so it does not make a replay new.
                    format!("subscription:{kind}:{}", sha256_hex(status.as_bytes())),
                    format!("SUBSCRIPTION/{kind}"),
                    Some(subscription),
                    event,
                )
            }
            other => return Err(malformed(&format!("unknown eventType {other:?}"))),
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Huawei,
                notification_id: id,
                app_id: Some(app_id.clone()),
                notification_type: kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at,
            },
            event,
        })
    }
}
