//! Every control-API action of every store, round-tripped: it succeeds on a purchase of the
//! right kind and answers with the notification the store would send for it.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use common::Emulator;

fn apple_type(body: &Value) -> String {
    let payload = body["signedPayload"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let n: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    format!(
        "{}/{}",
        n["notificationType"].as_str().unwrap(),
        n["subtype"].as_str().unwrap_or("")
    )
}

fn google_type(envelope: &Value) -> String {
    let data = STANDARD
        .decode(envelope["message"]["data"].as_str().unwrap())
        .unwrap();
    let n: Value = serde_json::from_slice(&data).unwrap();
    for (kind, label) in [
        ("subscriptionNotification", "sub"),
        ("oneTimeProductNotification", "otp"),
    ] {
        if let Some(t) = n[kind]["notificationType"].as_i64() {
            return format!("{label}:{t}");
        }
    }
    n.get("voidedPurchaseNotification")
        .map_or_else(|| "?".into(), |_| "voided".into())
}

fn huawei_type(body: &Value) -> String {
    if let Some(order) = body.get("orderNotification") {
        return format!("order:{}", order["notificationType"]);
    }
    let status: Value = serde_json::from_str(
        body["subNotification"]["statusUpdateNotification"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    format!("sub:{}", status["notificationType"])
}

#[tokio::test]
async fn apple_actions() {
    let e = Emulator::start().await;
    let purchase = |product_type: &str| json!({ "bundle_id": "com.example.game", "product_id": "p", "product_type": product_type });
    for product_type in ["Consumable", "Non-Consumable", "Non-Renewing Subscription"] {
        let made = e.control("/apple/purchases", purchase(product_type)).await;
        assert_eq!(apple_type(&made["notification"]), "ONE_TIME_CHARGE/");
        let id = made["transaction_id"].as_str().unwrap();
        let request = e
            .control(
                &format!("/apple/transactions/{id}/consumption_request"),
                json!({}),
            )
            .await;
        assert_eq!(apple_type(&request["notification"]), "CONSUMPTION_REQUEST/");
        let refund = e
            .control(&format!("/apple/transactions/{id}/refund"), json!({}))
            .await;
        assert_eq!(apple_type(&refund["notification"]), "REFUND/");
        e.control(&format!("/apple/transactions/{id}/finish"), json!({}))
            .await;
    }
    let made = e
        .control("/apple/purchases", purchase("Auto-Renewable Subscription"))
        .await;
    let original = made["original_transaction_id"].as_str().unwrap();
    for (action, expected) in [
        ("renew", "DID_RENEW/"),
        ("enter_grace", "DID_FAIL_TO_RENEW/GRACE_PERIOD"),
        ("billing_retry", "DID_FAIL_TO_RENEW/"),
        ("grace_expired", "GRACE_PERIOD_EXPIRED/"),
        ("recover", "DID_RENEW/BILLING_RECOVERY"),
        (
            "disable_auto_renew",
            "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED",
        ),
        (
            "enable_auto_renew",
            "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_ENABLED",
        ),
        ("upgrade", "DID_CHANGE_RENEWAL_PREF/UPGRADE"),
        ("expire", "EXPIRED/VOLUNTARY"),
    ] {
        let reply = e
            .control(
                &format!("/apple/subscriptions/{original}/{action}"),
                json!({ "product_id": "premium_yearly" }),
            )
            .await;
        assert_eq!(apple_type(&reply["notification"]), expected, "{action}");
    }
}

#[tokio::test]
async fn google_actions() {
    let e = Emulator::start().await;
    let purchase = |kind: &str, pending: bool| json!({ "package_name": "com.example.game", "product_id": "p", "kind": kind, "pending": pending });
    let pending = e
        .control("/google/purchases", purchase("inapp", true))
        .await;
    assert!(
        pending["notification"].is_null(),
        "nothing is notified for a pending purchase"
    );
    let token = pending["purchase_token"].as_str().unwrap();
    let done = e
        .control(&format!("/google/purchases/{token}/complete"), json!({}))
        .await;
    assert_eq!(google_type(&done["notification"]), "otp:1");
    let refund = e
        .control(&format!("/google/purchases/{token}/refund"), json!({}))
        .await;
    assert_eq!(google_type(&refund["notification"]), "voided");
    e.control(
        &format!("/google/purchases/{token}/invalidate_token"),
        json!({}),
    )
    .await;

    let abandoned = e
        .control("/google/purchases", purchase("inapp", true))
        .await;
    let token = abandoned["purchase_token"].as_str().unwrap();
    let cancelled = e
        .control(
            &format!("/google/purchases/{token}/cancel_pending"),
            json!({}),
        )
        .await;
    assert_eq!(google_type(&cancelled["notification"]), "otp:2");

    let sub = e
        .control("/google/purchases", purchase("subs", false))
        .await;
    assert_eq!(google_type(&sub["notification"]), "sub:4");
    let token = sub["purchase_token"].as_str().unwrap();
    for (action, expected) in [
        ("renew", 2),
        ("enter_grace", 6),
        ("hold", 5),
        ("recover", 1),
        ("pause", 10),
        ("resume", 1),
        ("cancel", 3),
        ("restart", 7),
        ("revoke", 12),
        ("expire", 13),
    ] {
        let reply = e
            .control(
                &format!("/google/subscriptions/{token}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(
            google_type(&reply["notification"]),
            format!("sub:{expected}"),
            "{action}"
        );
    }
}

#[tokio::test]
async fn huawei_actions() {
    let e = Emulator::start().await;
    let purchase = |kind: u8, pending: bool| json!({ "app_id": "1001", "product_id": "p", "kind": kind, "pending": pending });
    for kind in [0, 1] {
        let made = e.control("/huawei/purchases", purchase(kind, false)).await;
        assert_eq!(huawei_type(&made["notification"]), "order:1");
        let token = made["purchase_token"].as_str().unwrap();
        let refund = e
            .control(&format!("/huawei/purchases/{token}/refund"), json!({}))
            .await;
        assert_eq!(huawei_type(&refund["notification"]), "order:2");
    }
    let pending = e.control("/huawei/purchases", purchase(0, true)).await;
    assert!(pending["notification"].is_null());
    let token = pending["purchase_token"].as_str().unwrap();
    let done = e
        .control(&format!("/huawei/purchases/{token}/complete"), json!({}))
        .await;
    assert_eq!(huawei_type(&done["notification"]), "order:1");

    let sub = e.control("/huawei/purchases", purchase(2, false)).await;
    assert_eq!(huawei_type(&sub["notification"]), "sub:0");
    let id = sub["subscription_id"].as_str().unwrap();
    for (action, expected) in [
        ("renew", 7),
        ("enter_grace", 8),
        ("hold", 9),
        ("recover", 6),
        ("cancel", 5),
        ("expire", 5),
    ] {
        let reply = e
            .control(&format!("/huawei/subscriptions/{id}/{action}"), json!({}))
            .await;
        assert_eq!(
            huawei_type(&reply["notification"]),
            format!("sub:{expected}"),
            "{action}"
        );
    }
    let token = sub["purchase_token"].as_str().unwrap();
    let refund = e
        .control(&format!("/huawei/purchases/{token}/refund"), json!({}))
        .await;
    assert_eq!(huawei_type(&refund["notification"]), "sub:1", "CANCEL");
}
