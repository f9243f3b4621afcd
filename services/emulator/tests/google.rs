//! Google Play as the emulator serves it, checked from the outside the way a backend uses it:
//! service-account OAuth, purchases, consume/acknowledge, subscriptions, refunds, faults.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};

const PACKAGE: &str = "com.example.game";

mod common;

use common::Emulator;

async fn access_token(emulator: &Emulator) -> String {
    let account: Value = emulator
        .http
        .get(format!(
            "{}/emulator/google/service-account.json",
            emulator.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        account["token_uri"],
        format!("{}/google/oauth2/token", emulator.base)
    );
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": account["client_email"], "aud": "https://oauth2.googleapis.com/token",
        "scope": "https://www.googleapis.com/auth/androidpublisher", "iat": now, "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = account["private_key_id"].as_str().map(str::to_owned);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        account["private_key"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let assertion = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let reply: Value = emulator
        .http
        .post(account["token_uri"].as_str().unwrap())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 3599);
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn api(
    emulator: &Emulator,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> (StatusCode, Value) {
    let url = format!(
        "{}/google/androidpublisher/v3/applications/{PACKAGE}/purchases/{path}",
        emulator.base
    );
    let response = emulator
        .http
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn rtdn_payload(envelope: &Value) -> Value {
    let data = envelope["message"]["data"].as_str().unwrap();
    assert_eq!(
        envelope["message"]["messageId"],
        envelope["message"]["message_id"]
    );
    serde_json::from_slice(&STANDARD.decode(data).unwrap()).unwrap()
}

#[tokio::test]
async fn one_time_purchase_is_signed_verifiable_and_consumed_once() {
    let emulator = Emulator::start().await;
    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": PACKAGE, "product_id": "gems_100", "kind": "inapp", "obfuscated_profile_id": "order-1" }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();

    // The client-side signature verifies with the licence key (SHA1withRSA over the exact JSON).
    let key: Value = emulator
        .http
        .get(format!(
            "{}/emulator/google/apps/{PACKAGE}/license-key",
            emulator.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let der = STANDARD
        .decode(key["public_key_base64"].as_str().unwrap())
        .unwrap();
    let verifying =
        VerifyingKey::<sha1::Sha1>::new(rsa::RsaPublicKey::from_public_key_der(&der).unwrap());
    let original = made["original_json"].as_str().unwrap();
    let signature = Signature::try_from(
        STANDARD
            .decode(made["signature"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    verifying
        .verify(original.as_bytes(), &signature)
        .expect("signature verifies");
    assert!(
        verifying
            .verify(
                original.replace("gems_100", "gems_999").as_bytes(),
                &signature
            )
            .is_err()
    );
    let original: Value = serde_json::from_str(original).unwrap();
    assert_eq!(original["purchaseToken"], token.as_str());
    assert_eq!(original["obfuscatedProfileId"], "order-1");

    let notification = rtdn_payload(&made["notification"]);
    assert_eq!(
        notification["oneTimeProductNotification"]["notificationType"],
        1
    );

    let access = access_token(&emulator).await;
    let (status, v2) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("productsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["purchaseStateContext"]["purchaseState"], "PURCHASED");
    assert_eq!(v2["acknowledgementState"], "ACKNOWLEDGEMENT_STATE_PENDING");
    assert_eq!(
        v2["productLineItem"][0]["productOfferDetails"]["consumptionState"],
        "CONSUMPTION_STATE_YET_TO_BE_CONSUMED"
    );
    assert_eq!(v2["obfuscatedExternalProfileId"], "order-1");

    let consume = format!("products/gems_100/tokens/{token}:consume");
    assert_eq!(
        api(&emulator, &access, reqwest::Method::POST, &consume)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = api(&emulator, &access, reqwest::Method::POST, &consume).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["errors"][0]["reason"], "invalidPurchaseState");
    let (_, v1) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("products/gems_100/tokens/{token}"),
    )
    .await;
    assert_eq!(v1["consumptionState"], 1);
    assert_eq!(v1["acknowledgementState"], 1, "consume also acknowledges");
    assert_eq!(
        v1["purchaseTimeMillis"]
            .as_str()
            .map(|s| s.parse::<i64>().is_ok()),
        Some(true),
        "int64 as string"
    );

    let stats = emulator.get("/stats").await;
    assert_eq!(stats["google.products.consume"], 2);
}

#[tokio::test]
async fn auth_unknown_tokens_and_injected_faults_answer_like_google() {
    let emulator = Emulator::start().await;
    let (status, body) = api(
        &emulator,
        "not-a-token",
        reqwest::Method::GET,
        "productsv2/tokens/x",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    let access = access_token(&emulator).await;
    let (status, body) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        "productsv2/tokens/unknown",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 400);

    let made = emulator
        .control("/google/purchases", json!({ "package_name": PACKAGE, "product_id": "no_ads", "kind": "inapp", "pending": true }))
        .await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();
    let (_, v2) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("productsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(v2["purchaseStateContext"]["purchaseState"], "PENDING");
    assert!(v2.get("purchaseCompletionTime").is_none());
    let ack = format!("products/no_ads/tokens/{token}:acknowledge");
    assert_eq!(
        api(&emulator, &access, reqwest::Method::POST, &ack).await.0,
        StatusCode::BAD_REQUEST,
        "pending cannot be acknowledged"
    );
    emulator
        .control(&format!("/google/purchases/{token}/complete"), json!({}))
        .await;

    emulator
        .control(
            "/faults",
            json!({ "path_prefix": "/google/androidpublisher", "kind": "google409", "count": 1 }),
        )
        .await;
    let (status, body) = api(&emulator, &access, reqwest::Method::POST, &ack).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["errors"][0]["reason"], "concurrentUpdate");
    emulator
        .control(
            "/faults",
            json!({ "path_prefix": "/google", "kind": "http429" }),
        )
        .await;
    let response = emulator
        .http
        .post(format!(
            "{}/google/androidpublisher/v3/applications/{PACKAGE}/purchases/{ack}",
            emulator.base
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    // Faults disarm after their count; acknowledging is then accepted, twice.
    assert_eq!(
        api(&emulator, &access, reqwest::Method::POST, &ack).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api(&emulator, &access, reqwest::Method::POST, &ack).await.0,
        StatusCode::NO_CONTENT
    );

    emulator
        .control(
            &format!("/google/purchases/{token}/invalidate_token"),
            json!({}),
        )
        .await;
    let (status, body) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("productsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "purchaseTokenNoLongerValid"
    );
}

#[tokio::test]
async fn subscription_life_cycle_renewals_upgrades_and_refunds() {
    let emulator = Emulator::start().await;
    let access = access_token(&emulator).await;
    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": PACKAGE, "product_id": "premium_monthly", "kind": "subs", "test_purchase": true, "free_trial": true }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();
    let first_order = made["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        rtdn_payload(&made["notification"])["subscriptionNotification"]["notificationType"],
        4
    );

    let (_, sub) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("subscriptionsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(sub["subscriptionState"], "SUBSCRIPTION_STATE_ACTIVE");
    assert_eq!(sub["testPurchase"], json!({}));
    assert!(sub["lineItems"][0]["offerPhase"].get("freeTrial").is_some());
    let ack = format!("subscriptions/premium_monthly/tokens/{token}:acknowledge");
    assert_eq!(
        api(&emulator, &access, reqwest::Method::POST, &ack).await.0,
        StatusCode::NO_CONTENT
    );

    let renewed = emulator
        .control(&format!("/google/subscriptions/{token}/renew"), json!({}))
        .await;
    assert_eq!(renewed["latest_order_id"], format!("{first_order}..0"));
    assert_eq!(
        rtdn_payload(&renewed["notification"])["subscriptionNotification"]["notificationType"],
        2
    );
    let (_, sub) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("subscriptionsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(
        sub["lineItems"][0]["latestSuccessfulOrderId"],
        format!("{first_order}..0")
    );
    assert_eq!(
        sub["acknowledgementState"],
        "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
    );

    for (action, state, kind) in [
        ("enter_grace", "SUBSCRIPTION_STATE_IN_GRACE_PERIOD", 6),
        ("hold", "SUBSCRIPTION_STATE_ON_HOLD", 5),
        ("recover", "SUBSCRIPTION_STATE_ACTIVE", 1),
        ("pause", "SUBSCRIPTION_STATE_PAUSED", 10),
        ("resume", "SUBSCRIPTION_STATE_ACTIVE", 1),
    ] {
        let reply = emulator
            .control(
                &format!("/google/subscriptions/{token}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(
            rtdn_payload(&reply["notification"])["subscriptionNotification"]["notificationType"],
            kind,
            "{action}"
        );
        let (_, sub) = api(
            &emulator,
            &access,
            reqwest::Method::GET,
            &format!("subscriptionsv2/tokens/{token}"),
        )
        .await;
        assert_eq!(sub["subscriptionState"], state, "{action}");
    }

    // Upgrade: a new token linked to the old one; the old one is replaced.
    let upgraded = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": PACKAGE, "product_id": "premium_yearly", "kind": "subs", "linked_purchase_token": token }),
        )
        .await;
    let new_token = upgraded["purchase_token"].as_str().unwrap();
    let (_, new_sub) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("subscriptionsv2/tokens/{new_token}"),
    )
    .await;
    assert_eq!(new_sub["linkedPurchaseToken"], token.as_str());
    let (_, old_sub) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("subscriptionsv2/tokens/{token}"),
    )
    .await;
    assert_eq!(old_sub["subscriptionState"], "SUBSCRIPTION_STATE_EXPIRED");
    assert!(
        old_sub["canceledStateContext"]
            .get("replacementCancellation")
            .is_some()
    );

    // Refund: listed in voided purchases (type=1 includes subscriptions) and notified.
    let refunded = emulator
        .control(&format!("/google/purchases/{new_token}/refund"), json!({}))
        .await;
    assert_eq!(
        rtdn_payload(&refunded["notification"])["voidedPurchaseNotification"]["productType"],
        1
    );
    let (_, only_inapp) = api(&emulator, &access, reqwest::Method::GET, "voidedpurchases").await;
    assert_eq!(only_inapp["voidedPurchases"].as_array().unwrap().len(), 0);
    let (_, voided) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        "voidedpurchases?type=1",
    )
    .await;
    assert_eq!(voided["voidedPurchases"][0]["purchaseToken"], new_token);
    assert_eq!(
        voided["voidedPurchases"][0]["kind"],
        "androidpublisher#voidedPurchase"
    );
}

/// Hostile tokens, answered as Google does: a token it does not know, or one whose URL syntax
/// arrives percent-encoded (the path is decoded, so `tok%23x` is the unknown token `tok#x`), is
/// 400 `invalid` "Invalid Value"; another package's token under this package's name is 400
/// `purchaseTokenDoesNotMatchPackageName`.
#[tokio::test]
async fn unknown_escaped_and_other_package_tokens_are_refused_as_google_does() {
    let emulator = Emulator::start().await;
    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": PACKAGE, "product_id": "gems_100", "kind": "inapp" }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();
    let theirs = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.othergame", "product_id": "gems_100", "kind": "inapp" }),
        )
        .await;
    let theirs = theirs["purchase_token"].as_str().unwrap().to_owned();
    let access = access_token(&emulator).await;
    for unknown in [
        "no-such-token".to_owned(),
        format!("{token}%23x"),
        format!("{token}%3Fx"),
        format!("{token}%2F..%2Fx"),
        format!("{token}%20"),
    ] {
        let (status, body) = api(
            &emulator,
            &access,
            reqwest::Method::GET,
            &format!("productsv2/tokens/{unknown}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
        assert_eq!(body["error"]["errors"][0]["reason"], "invalid");
        assert_eq!(body["error"]["message"], "Invalid Value");
    }
    let (status, body) = api(
        &emulator,
        &access,
        reqwest::Method::GET,
        &format!("productsv2/tokens/{theirs}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "purchaseTokenDoesNotMatchPackageName"
    );
    assert_eq!(body["error"]["errors"][0]["domain"], "androidpublisher");
}
