//! Control-API behaviour shared by the stores: pushing notifications (duplicated, delayed,
//! reversed), dropped connections, and Google's subscription deferral.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use common::Emulator;

/// A receiver that records every body posted to it.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    flaky_receiver(0).await
}

async fn wait_for(seen: &Arc<Mutex<Vec<Value>>>, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen.lock().unwrap().clone()
}

async fn put(emulator: &Emulator, path: &str, body: Value) {
    let response = emulator
        .http
        .put(format!("{}/emulator{path}", emulator.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

fn google_type(envelope: &Value) -> i64 {
    let data = STANDARD
        .decode(envelope["message"]["data"].as_str().unwrap())
        .unwrap();
    let notification: Value = serde_json::from_slice(&data).unwrap();
    notification["subscriptionNotification"]["notificationType"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn notifications_are_pushed_duplicated_and_reordered_on_request() {
    let emulator = Emulator::start().await;
    let (url, seen) = receiver().await;
    put(
        &emulator,
        "/notifications/targets/google",
        json!({ "url": url }),
    )
    .await;

    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.game", "product_id": "sub", "kind": "subs" }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();
    let pushed = wait_for(&seen, 1).await;
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        pushed[0], made["notification"],
        "the pushed body is the one returned"
    );

    // Each notification twice: receivers must deduplicate on messageId.
    put(&emulator, "/notifications/mode", json!({ "duplicate": 1 })).await;
    emulator
        .control(&format!("/google/subscriptions/{token}/renew"), json!({}))
        .await;
    let pushed = wait_for(&seen, 3).await;
    assert_eq!(pushed.len(), 3);
    assert_eq!(
        pushed[1]["message"]["messageId"],
        pushed[2]["message"]["messageId"]
    );

    // Held in pairs and delivered newest first: receivers must cope with reordering.
    put(
        &emulator,
        "/notifications/mode",
        json!({ "reverse_batches": 2 }),
    )
    .await;
    emulator
        .control(
            &format!("/google/subscriptions/{token}/enter_grace"),
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().unwrap().len(), 3, "the first of a pair is held");
    emulator
        .control(&format!("/google/subscriptions/{token}/recover"), json!({}))
        .await;
    let pushed = wait_for(&seen, 5).await;
    assert_eq!(google_type(&pushed[3]), 1, "recovered arrives first");
    assert_eq!(google_type(&pushed[4]), 6, "grace arrives second");

    let deliveries = emulator.get("/notifications/deliveries").await;
    assert_eq!(deliveries.as_array().unwrap().len(), 5);
    assert!(
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == 200)
    );
}

#[tokio::test]
async fn apple_and_huawei_notifications_are_pushed_too() {
    let emulator = Emulator::start().await;
    let (url, seen) = receiver().await;
    put(
        &emulator,
        "/notifications/targets/apple",
        json!({ "url": url }),
    )
    .await;
    put(
        &emulator,
        "/notifications/targets/huawei",
        json!({ "url": url }),
    )
    .await;
    emulator
        .control("/apple/purchases", json!({ "bundle_id": "com.example.game", "product_id": "gems", "product_type": "Consumable" }))
        .await;
    emulator
        .control(
            "/huawei/purchases",
            json!({ "app_id": "1001", "product_id": "gems", "kind": 0 }),
        )
        .await;
    let pushed = wait_for(&seen, 2).await;
    let apple = pushed
        .iter()
        .find(|b| b.get("signedPayload").is_some())
        .expect("Apple body");
    let payload = apple["signedPayload"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(payload["notificationType"], "ONE_TIME_CHARGE");
    let huawei = pushed
        .iter()
        .find(|b| b.get("eventType").is_some())
        .expect("Huawei body");
    assert_eq!(huawei["orderNotification"]["notificationType"], 1);
}

#[tokio::test]
async fn dropped_connections_and_deferrals() {
    let emulator = Emulator::start().await;
    // Several armed: an HTTP client may retry a request whose connection died before the reply.
    let prefix = "/google/androidpublisher/v3/applications/p/";
    emulator
        .control(
            "/faults",
            json!({ "path_prefix": prefix, "kind": "drop_connection", "count": 5 }),
        )
        .await;
    let result = async {
        let url = format!("{}{prefix}purchases/productsv2/tokens/t", emulator.base);
        let response = emulator.http.get(url).send().await?;
        response.bytes().await
    }
    .await;
    assert!(
        result.is_err(),
        "the connection is cut mid-response: {result:?}"
    );

    let account = emulator.get("/google/service-account.json").await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "iss": account["client_email"], "aud": "https://oauth2.googleapis.com/token",
        "scope": "https://www.googleapis.com/auth/androidpublisher", "iat": now, "exp": now + 600 });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        account["private_key"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let token: Value = emulator
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
    let access = token["access_token"].as_str().unwrap();
    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.game", "product_id": "sub", "kind": "subs" }),
        )
        .await;
    let base = format!(
        "{}/google/androidpublisher/v3/applications/com.example.game/purchases/subscriptionsv2/tokens/{}",
        emulator.base,
        made["purchase_token"].as_str().unwrap()
    );
    let before: Value = emulator
        .http
        .get(&base)
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let defer = |etag: Value| {
        emulator
            .http
            .post(format!("{base}:defer"))
            .bearer_auth(access)
            .json(&json!({ "deferralContext": { "deferDuration": "86400s", "etag": etag } }))
            .send()
    };
    assert_eq!(defer(json!("stale")).await.unwrap().status(), 400);
    let reply: Value = defer(before["etag"].clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after: Value = emulator
        .http
        .get(&base)
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["itemExpiryTimeDetails"][0]["expiryTime"],
        after["lineItems"][0]["expiryTime"]
    );
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let moved =
        parse(&after["lineItems"][0]["expiryTime"]) - parse(&before["lineItems"][0]["expiryTime"]);
    assert_eq!(moved.num_seconds(), 86_400);
}

#[tokio::test]
async fn state_file_keeps_keys_and_purchases_across_restarts() {
    let dir = std::env::temp_dir().join(format!(
        "iap-emulator-state-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = || iap_emulator::EmulatorConfig {
        state_file: Some(dir.join("state.json")),
        ..Default::default()
    };

    let first = Emulator::start_with(config()).await;
    let apple_root = first
        .http
        .get(format!("{}/emulator/apple/root.der", first.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let huawei = first.get("/huawei/apps/1001/credentials").await;
    let apple = first
        .control("/apple/purchases", json!({ "bundle_id": "com.example.game", "product_id": "gems", "product_type": "Consumable" }))
        .await;
    let google = first
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.game", "product_id": "gems", "kind": "inapp" }),
        )
        .await;
    drop(first);

    let second = Emulator::start_with(config()).await;
    let root_again = second
        .http
        .get(format!("{}/emulator/apple/root.der", second.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(root_again, apple_root, "the same signing chain");
    assert_eq!(
        second.get("/huawei/apps/1001/credentials").await,
        huawei,
        "the same Huawei keys and secret"
    );
    let account = second.get("/google/service-account.json").await;
    assert_eq!(
        account["token_uri"],
        format!("{}/google/oauth2/token", second.base),
        "token_uri follows the new address"
    );
    let refunded = second
        .control(
            &format!(
                "/google/purchases/{}/refund",
                google["purchase_token"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert!(
        refunded["notification"].is_object(),
        "the Google purchase is still known"
    );
    let id = apple["transaction_id"].as_str().unwrap();
    second
        .control(&format!("/apple/transactions/{id}/refund"), json!({}))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receiver that answers 503 to the first `failures` posts, then 200; records every post.
async fn flaky_receiver(failures: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                let mut seen = sink.lock().unwrap();
                seen.push(body);
                if seen.len() <= failures {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn unanswered_notifications_are_resent_like_the_stores_do() {
    let emulator = Emulator::start().await;
    put(
        &emulator,
        "/notifications/mode",
        json!({ "retries": 3, "retry_delay_ms": 50 }),
    )
    .await;

    // Google: two 503s, then acknowledged on the third try; nothing after that.
    let (url, seen) = flaky_receiver(2).await;
    put(
        &emulator,
        "/notifications/targets/google",
        json!({ "url": url }),
    )
    .await;
    emulator
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.game", "product_id": "gems", "kind": "inapp" }),
        )
        .await;
    let pushed = wait_for(&seen, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "resent until answered 200, then not again"
    );
    assert_eq!(
        pushed[0], pushed[2],
        "a resend is the same body (same messageId)"
    );
    let attempts: Vec<u64> = emulator
        .get("/notifications/deliveries")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [0, 1, 2]);

    // Apple resends production notifications only: a sandbox one is tried once.
    let (url, seen) = flaky_receiver(100).await;
    put(
        &emulator,
        "/notifications/targets/apple",
        json!({ "url": url }),
    )
    .await;
    emulator
        .control("/apple/purchases", json!({ "bundle_id": "com.example.game", "product_id": "gems", "product_type": "Consumable", "environment": "Sandbox" }))
        .await;
    wait_for(&seen, 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "sandbox: one try");
    emulator
        .control("/apple/purchases", json!({ "bundle_id": "com.example.game", "product_id": "gems", "product_type": "Consumable", "environment": "Production" }))
        .await;
    let pushed = wait_for(&seen, 5).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        5,
        "production: the first try and 3 resends, all refused"
    );
    assert_eq!(pushed[1], pushed[4]);
}

#[tokio::test]
async fn purchase_views_show_what_the_store_holds() {
    let emulator = Emulator::start().await;
    let made = emulator
        .control(
            "/google/purchases",
            json!({ "package_name": "com.example.game", "product_id": "gems", "kind": "inapp", "pending": true }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap();
    let view = emulator.get(&format!("/google/purchases/{token}")).await;
    assert_eq!(view["state"], "pending");
    assert_eq!(view["consumed"], false);
    emulator
        .control(&format!("/google/purchases/{token}/complete"), json!({}))
        .await;
    let view = emulator.get(&format!("/google/purchases/{token}")).await;
    assert_eq!(view["state"], "purchased");
    assert_eq!(view["order_id"], made["order_id"]);

    let made = emulator
        .control(
            "/huawei/purchases",
            json!({ "app_id": "1001", "product_id": "gems", "kind": 0 }),
        )
        .await;
    let token = made["purchase_token"].as_str().unwrap();
    let view = emulator.get(&format!("/huawei/purchases/{token}")).await;
    assert_eq!(view["purchase_state"], 0);
    assert_eq!(view["confirmed"], false);
    emulator
        .control(&format!("/huawei/purchases/{token}/refund"), json!({}))
        .await;
    let view = emulator.get(&format!("/huawei/purchases/{token}")).await;
    assert_eq!(view["purchase_state"], 2);
}
