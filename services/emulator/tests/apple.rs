//! The App Store as the emulator serves it: signed transactions with an Apple-shaped x5c chain,
//! the App Store Server API behind an ES256 bearer token, legacy verifyReceipt with its status
//! codes, and ASSN v2 notifications for the subscription life cycle.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use common::Emulator;

const BUNDLE: &str = "com.example.game";
const LEAF_OID: &str = "1.2.840.113635.100.6.11.1";
const INTERMEDIATE_OID: &str = "1.2.840.113635.100.6.2.1";

/// Checks a JWS the way Apple's libraries do (chain to the given root, OIDs, ES256) and returns
/// its payload.
fn verify_jws(jws: &str, root_der: &[u8]) -> Value {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let chain: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(chain[2], root_der, "the chain ends at the emulator's root");
    let certs: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|der| X509Certificate::from_der(der).unwrap().1)
        .collect();
    certs[0]
        .verify_signature(Some(certs[1].public_key()))
        .expect("leaf signed by intermediate");
    certs[1]
        .verify_signature(Some(certs[2].public_key()))
        .expect("intermediate signed by root");
    certs[2].verify_signature(None).expect("root self-signed");
    let has = |cert: &X509Certificate<'_>, oid: &str| {
        cert.extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == oid)
    };
    assert!(
        has(&certs[0], LEAF_OID),
        "leaf carries Apple's receipt-signing OID"
    );
    assert!(
        has(&certs[1], INTERMEDIATE_OID),
        "intermediate carries Apple's WWDR OID"
    );
    let leaf_key = certs[0].public_key().subject_public_key.data.to_vec();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, leaf_key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("ES256 signature");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

async fn root(emulator: &Emulator) -> Vec<u8> {
    let response = emulator
        .http
        .get(format!("{}/emulator/apple/root.der", emulator.base))
        .send()
        .await
        .unwrap();
    response.bytes().await.unwrap().to_vec()
}

async fn api_token(emulator: &Emulator) -> String {
    let key = emulator.get("/apple/api-key").await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "iss": key["issuer_id"], "iat": now, "exp": now + 300, "aud": "appstoreconnect-v1", "bid": BUNDLE });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = key["key_id"].as_str().map(str::to_owned);
    let signing =
        jsonwebtoken::EncodingKey::from_ec_pem(key["private_key_pem"].as_str().unwrap().as_bytes())
            .unwrap();
    jsonwebtoken::encode(&header, &claims, &signing).unwrap()
}

async fn api(emulator: &Emulator, token: &str, env: &str, path: &str) -> (StatusCode, Value) {
    let response = emulator
        .http
        .get(format!("{}/apple/{env}{path}", emulator.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn verify_receipt(emulator: &Emulator, env: &str, body: Value) -> Value {
    emulator
        .http
        .post(format!("{}/apple/{env}/verifyReceipt", emulator.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn signed_transactions_chain_to_the_emulator_root_with_apple_oids() {
    let emulator = Emulator::start().await;
    let root = root(&emulator).await;
    let order = "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f";
    let made = emulator
        .control(
            "/apple/purchases",
            json!({ "bundle_id": BUNDLE, "product_id": "gems_100", "product_type": "Consumable", "app_account_token": order }),
        )
        .await;
    let payload = verify_jws(made["signed_transaction"].as_str().unwrap(), &root);
    assert_eq!(payload["bundleId"], BUNDLE);
    assert_eq!(payload["appAccountToken"], order);
    assert_eq!(payload["environment"], "Sandbox");
    assert_eq!(payload["type"], "Consumable");
    assert_eq!(payload["transactionId"], made["transaction_id"]);
    let notification = made["notification"]["signedPayload"].as_str().unwrap();
    let notification = verify_jws(notification, &root);
    assert_eq!(notification["notificationType"], "ONE_TIME_CHARGE");
    let inner = verify_jws(
        notification["data"]["signedTransactionInfo"]
            .as_str()
            .unwrap(),
        &root,
    );
    assert_eq!(inner["transactionId"], made["transaction_id"]);

    // A tampered payload no longer verifies.
    let jws = made["signed_transaction"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
            .unwrap()
            .replace("gems_100", "gems_999"),
    );
    let result = std::panic::catch_unwind(|| {
        verify_jws(&format!("{}.{forged}.{}", parts[0], parts[2]), &root)
    });
    assert!(result.is_err());
}

#[tokio::test]
async fn server_api_requires_a_valid_token_and_separates_environments() {
    let emulator = Emulator::start().await;
    let root = root(&emulator).await;
    let made = emulator
        .control("/apple/purchases", json!({ "bundle_id": BUNDLE, "product_id": "no_ads", "product_type": "Non-Consumable" }))
        .await;
    let id = made["transaction_id"].as_str().unwrap();
    let path = format!("/inApps/v1/transactions/{id}");

    assert_eq!(
        api(&emulator, "not-a-jwt", "sandbox", &path).await.0,
        StatusCode::UNAUTHORIZED
    );
    let token = api_token(&emulator).await;
    let (status, body) = api(&emulator, &token, "sandbox", &path).await;
    assert_eq!(status, StatusCode::OK);
    let payload = verify_jws(body["signedTransactionInfo"].as_str().unwrap(), &root);
    assert_eq!(payload["productId"], "no_ads");

    // A sandbox transaction is unknown to production: 404 with 4040010, the fallback signal.
    let (status, body) = api(&emulator, &token, "production", &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], 4_040_010);
    let (status, body) = api(&emulator, &token, "sandbox", "/inApps/v1/transactions/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], 4_000_006);

    let (_, history) = api(
        &emulator,
        &token,
        "sandbox",
        &format!("/inApps/v2/history/{id}"),
    )
    .await;
    assert_eq!(history["signedTransactions"].as_array().unwrap().len(), 1);
    assert_eq!(history["hasMore"], false);
    let order = made["order_id"].as_str().unwrap();
    let (_, lookup) = api(
        &emulator,
        &token,
        "sandbox",
        &format!("/inApps/v1/lookup/{order}"),
    )
    .await;
    assert_eq!(lookup["status"], 0);

    emulator
        .control(
            "/faults",
            json!({ "path_prefix": "/apple/sandbox/inApps", "kind": "http429" }),
        )
        .await;
    let response = emulator
        .http
        .get(format!("{}/apple/sandbox{path}", emulator.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_at: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_at > chrono::Utc::now().timestamp_millis() - 5_000,
        "UNIX milliseconds"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["errorCode"],
        4_290_000
    );
}

#[tokio::test]
async fn verify_receipt_redirects_checks_the_shared_secret_and_drops_finished_consumables() {
    let emulator = Emulator::start().await;
    let consumable = emulator
        .control(
            "/apple/purchases",
            json!({ "bundle_id": BUNDLE, "product_id": "gems_100", "product_type": "Consumable" }),
        )
        .await;
    let receipt = consumable["receipt_data"].as_str().unwrap();

    assert_eq!(
        verify_receipt(&emulator, "production", json!({ "receipt-data": receipt })).await["status"],
        21007
    );
    let reply = verify_receipt(&emulator, "sandbox", json!({ "receipt-data": receipt })).await;
    assert_eq!(reply["status"], 0);
    assert_eq!(reply["environment"], "Sandbox");
    assert_eq!(reply["receipt"]["bundle_id"], BUNDLE);
    assert_eq!(
        reply["receipt"]["in_app"][0]["transaction_id"],
        consumable["transaction_id"]
    );
    assert_eq!(
        reply["receipt"]["in_app"][0]["quantity"], "1",
        "numbers are strings in receipts"
    );
    assert_eq!(
        verify_receipt(
            &emulator,
            "sandbox",
            json!({ "receipt-data": "bm90IGEgcmVjZWlwdA==" })
        )
        .await["status"],
        21002
    );

    let production = emulator
        .control(
            "/apple/purchases",
            json!({ "bundle_id": BUNDLE, "product_id": "no_ads", "product_type": "Non-Consumable", "environment": "Production", "customer": "c2" }),
        )
        .await;
    let production_receipt = production["receipt_data"].as_str().unwrap();
    assert_eq!(
        verify_receipt(
            &emulator,
            "sandbox",
            json!({ "receipt-data": production_receipt })
        )
        .await["status"],
        21008
    );
    assert_eq!(
        verify_receipt(
            &emulator,
            "production",
            json!({ "receipt-data": production_receipt })
        )
        .await["status"],
        0
    );

    // Once finished on the device, a consumable is gone from the receipts Apple returns.
    let id = consumable["transaction_id"].as_str().unwrap();
    emulator
        .control(&format!("/apple/transactions/{id}/finish"), json!({}))
        .await;
    let reply = verify_receipt(&emulator, "sandbox", json!({ "receipt-data": receipt })).await;
    assert_eq!(reply["latest_receipt_info"].as_array().unwrap().len(), 0);

    let subscription = emulator
        .control(
            "/apple/purchases",
            json!({ "bundle_id": BUNDLE, "product_id": "premium_monthly", "product_type": "Auto-Renewable Subscription" }),
        )
        .await;
    let receipt = subscription["receipt_data"].as_str().unwrap();
    assert_eq!(
        verify_receipt(&emulator, "sandbox", json!({ "receipt-data": receipt })).await["status"],
        21003
    );
    assert_eq!(
        verify_receipt(
            &emulator,
            "sandbox",
            json!({ "receipt-data": receipt, "password": "wrong" })
        )
        .await["status"],
        21004
    );
    let secret = emulator
        .get(&format!("/apple/apps/{BUNDLE}/shared-secret"))
        .await["shared_secret"]
        .clone();
    let original = subscription["original_transaction_id"].as_str().unwrap();
    emulator
        .control(&format!("/apple/subscriptions/{original}/renew"), json!({}))
        .await;
    let reply = verify_receipt(
        &emulator,
        "sandbox",
        json!({ "receipt-data": receipt, "password": secret }),
    )
    .await;
    assert_eq!(reply["status"], 0);
    assert_eq!(
        reply["latest_receipt_info"].as_array().unwrap().len(),
        2,
        "purchase and renewal"
    );
    assert_eq!(reply["pending_renewal_info"][0]["auto_renew_status"], "1");
    let reply = verify_receipt(
        &emulator,
        "sandbox",
        json!({ "receipt-data": receipt, "password": secret, "exclude-old-transactions": true }),
    )
    .await;
    assert_eq!(
        reply["latest_receipt_info"].as_array().unwrap().len(),
        1,
        "only the latest renewal"
    );
}

#[tokio::test]
async fn subscription_life_cycle_emits_signed_notifications() {
    let emulator = Emulator::start().await;
    let root = root(&emulator).await;
    let token = api_token(&emulator).await;
    let made = emulator
        .control(
            "/apple/purchases",
            json!({ "bundle_id": BUNDLE, "product_id": "premium_monthly", "product_type": "Auto-Renewable Subscription", "free_trial": true }),
        )
        .await;
    let original = made["original_transaction_id"].as_str().unwrap().to_owned();
    let first = verify_jws(
        made["notification"]["signedPayload"].as_str().unwrap(),
        &root,
    );
    assert_eq!(
        (
            first["notificationType"].as_str(),
            first["subtype"].as_str()
        ),
        (Some("SUBSCRIBED"), Some("INITIAL_BUY"))
    );

    let mut seen = Vec::new();
    for action in [
        "renew",
        "enter_grace",
        "grace_expired",
        "recover",
        "disable_auto_renew",
        "expire",
    ] {
        let reply = emulator
            .control(
                &format!("/apple/subscriptions/{original}/{action}"),
                json!({}),
            )
            .await;
        let n = verify_jws(
            reply["notification"]["signedPayload"].as_str().unwrap(),
            &root,
        );
        assert_eq!(n["data"]["bundleId"], BUNDLE);
        let renewal = verify_jws(n["data"]["signedRenewalInfo"].as_str().unwrap(), &root);
        assert_eq!(renewal["originalTransactionId"], original.as_str());
        if action == "enter_grace" {
            assert!(renewal["gracePeriodExpiresDate"].as_i64().is_some());
            assert_eq!(n["data"]["status"], 4);
        }
        seen.push(format!(
            "{}/{}",
            n["notificationType"].as_str().unwrap(),
            n["subtype"].as_str().unwrap_or("")
        ));
    }
    assert_eq!(
        seen,
        [
            "DID_RENEW/",
            "DID_FAIL_TO_RENEW/GRACE_PERIOD",
            "GRACE_PERIOD_EXPIRED/",
            "DID_RENEW/BILLING_RECOVERY",
            "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED",
            "EXPIRED/VOLUNTARY"
        ]
    );

    let (_, statuses) = api(
        &emulator,
        &token,
        "sandbox",
        &format!("/inApps/v1/subscriptions/{original}"),
    )
    .await;
    assert_eq!(
        statuses["data"][0]["lastTransactions"][0]["status"], 2,
        "expired"
    );

    let history = emulator
        .http
        .post(format!(
            "{}/apple/sandbox/inApps/v1/notifications/history",
            emulator.base
        ))
        .bearer_auth(&token)
        .json(&json!({ "startDate": 0, "endDate": i64::MAX }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(history["notificationHistory"].as_array().unwrap().len(), 7);
}
