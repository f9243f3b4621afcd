//! Every rejection reason VerifyPurchase can give, through gRPC, against `iap-emulator` and a
//! real PostgreSQL database: the machine-readable reason, whether the client may finish the
//! store transaction, and that nothing stored was changed by the refusal. Store outages answer
//! UNAVAILABLE with retry advice. (ENVIRONMENT_MISMATCH needs an App Store environment the
//! emulator never signs; the Apple verifier's unit tests cover it.)

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use common::{APP, Emulator, HUAWEI_APP, RunningVerifier, count_rows, settings_from, start_with};

struct World {
    store: Emulator,
    verifier: RunningVerifier,
    orders: OrderServiceClient<Channel>,
    verification: VerificationServiceClient<Channel>,
}

impl World {
    async fn start() -> Self {
        let store = Emulator::start().await;
        let settings = settings_from(&format!(
            r#"
            [apps."{APP}"]
            sandbox = {{ users = ["tester"] }}
            [apps."{APP}".products.gems_100]
            kind = "consumable"
            max_quantity = 10
            [apps."{APP}".products.gems_500]
            kind = "consumable"
            [apps."{APP}".products.premium_monthly]
            kind = "auto_renewable"
            {}
            "#,
            store.store_settings_for(APP).await
        ));
        let verifier = start_with(settings).await;
        Self {
            orders: OrderServiceClient::new(verifier.channel.clone()),
            verification: VerificationServiceClient::new(verifier.channel.clone()),
            store,
            verifier,
        }
    }

    async fn google_buy(&self, extra: Value) -> Value {
        let mut body = json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.store
            .post_json("/emulator/google/purchases", body)
            .await
    }

    async fn huawei_buy(&self, extra: Value) -> Value {
        let mut body = json!({ "app_id": HUAWEI_APP, "product_id": "gems_100", "kind": 0 });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.store
            .post_json("/emulator/huawei/purchases", body)
            .await
    }

    async fn create_order(
        &self,
        user: &str,
        product: &str,
        platform: pb::Platform,
    ) -> pb::CreateOrderResponse {
        self.create(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: product.into(),
            platform: platform.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
    }

    async fn create(&self, request: pb::CreateOrderRequest) -> pb::CreateOrderResponse {
        self.orders
            .clone()
            .create_order(request)
            .await
            .unwrap()
            .into_inner()
    }

    async fn order_state(&self, order_id: &str) -> pb::OrderState {
        self.orders
            .clone()
            .get_order(pb::GetOrderRequest {
                order_id: order_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
            .state()
    }

    async fn verify(
        &self,
        request: pb::VerifyPurchaseRequest,
    ) -> Result<pb::VerifyPurchaseResponse, tonic::Status> {
        self.verification
            .clone()
            .verify_purchase(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Expects a rejection; returns (gRPC code, reason, finish_transaction).
    async fn refused(&self, request: pb::VerifyPurchaseRequest) -> (Code, String, bool) {
        let status = self.verify(request).await.expect_err("a rejection");
        let info = status
            .get_details_error_info()
            .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
        let finish = info.metadata.get("finish_transaction").map(String::as_str) == Some("true");
        (status.code(), info.reason, finish)
    }

    async fn stored_purchases(&self) -> i64 {
        count_rows(&self.verifier, "store_transactions", "1 = 1").await
    }
}

fn google(user: &str, order_id: &str, made: &Value, product: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: order_id.into(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: product.into(),
                original_json: made["original_json"].as_str().unwrap_or("").into(),
                signature: made["signature"].as_str().unwrap_or("").into(),
            },
        )),
    }
}

fn huawei(user: &str, made: &Value) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
            pb::HuaweiPurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: "gems_100".into(),
                in_app_purchase_data: made["in_app_purchase_data"].as_str().unwrap().into(),
                signature: made["data_signature"].as_str().unwrap().into(),
                signature_algorithm: made["signature_algorithm"].as_str().unwrap_or("").into(),
            },
        )),
    }
}

fn apple_jws(user: &str, jws: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(jws.into())),
                ..Default::default()
            },
        )),
    }
}

#[tokio::test]
async fn payment_state_rejections_not_paid_pending_refunded_expired_not_found() {
    let w = World::start().await;
    let precondition =
        |reason: &str, finish: bool| (Code::FailedPrecondition, reason.to_owned(), finish);

    // PENDING keeps the transaction open; once cancelled it is NOT_PAID, and final.
    let pending = w.google_buy(json!({ "pending": true })).await;
    assert_eq!(
        w.refused(google("p1", "", &pending, "gems_100")).await,
        precondition("PENDING", false)
    );
    let token = pending["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/google/purchases/{token}/cancel_pending"),
            json!({}),
        )
        .await;
    assert_eq!(
        w.refused(google("p1", "", &pending, "gems_100")).await,
        precondition("NOT_PAID", true)
    );

    // Refunded before it was redeemed.
    let refunded = w.google_buy(json!({})).await;
    let token = refunded["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    assert_eq!(
        w.refused(google("p1", "", &refunded, "gems_100")).await,
        precondition("REFUNDED", true)
    );

    // A subscription that lapsed before it was redeemed.
    let sub = w
        .google_buy(json!({ "product_id": "premium_monthly", "kind": "subs" }))
        .await;
    let token = sub["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/google/subscriptions/{token}/expire"),
            json!({}),
        )
        .await;
    assert_eq!(
        w.refused(google("p1", "", &sub, "premium_monthly")).await,
        precondition("EXPIRED", true)
    );

    // A token the store never issued: the store may still learn it, so the client keeps it.
    let unknown = json!({ "purchase_token": "never-issued-token" });
    assert_eq!(
        w.refused(google("p1", "", &unknown, "gems_100")).await,
        precondition("NOT_FOUND_AT_STORE", false)
    );
    assert_eq!(w.stored_purchases().await, 0, "no refusal stored anything");
}

#[tokio::test]
async fn binding_mismatches_are_recorded_for_the_payer_price_and_replay_are_refused() {
    let w = World::start().await;

    // The purchase carries an order for another product: not that order's payment, but a paid
    // purchase of the user's all the same — recorded on an order of its own, never refused for
    // good (which would make the client finish it unrecorded).
    let order = w.create_order("p1", "gems_100", pb::Platform::Google).await;
    let order_id = order.order.unwrap().order_id;
    let binding = order.binding.unwrap();
    let other_product = w
        .google_buy(json!({ "product_id": "gems_500",
            "obfuscated_account_id": binding.google_obfuscated_account_id,
            "obfuscated_profile_id": binding.google_obfuscated_profile_id }))
        .await;
    let own = w
        .verify(google("p1", "", &other_product, "gems_500"))
        .await
        .unwrap();
    assert!(own.finish_transaction);
    let own = own.order.unwrap();
    assert_ne!(own.order_id, order_id);
    assert_eq!(
        (own.user_id.as_str(), own.product_id.as_str()),
        ("p1", "gems_500")
    );

    // The caller names an order of another user: a hint passed over, the purchase is p1's.
    let foreign = w.create_order("p2", "gems_100", pb::Platform::Google).await;
    let foreign_id = foreign.order.unwrap().order_id;
    let plain = w.google_buy(json!({})).await;
    let paid = w
        .verify(google("p1", &foreign_id, &plain, "gems_100"))
        .await
        .unwrap();
    assert_eq!(
        paid.order.unwrap().order_id,
        order_id,
        "p1's own open order"
    );
    assert_eq!(w.order_state(&foreign_id).await, pb::OrderState::Created);

    // PRICE_MISMATCH: Huawei reports the price; the order expected another one.
    let priced = w
        .create(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "p3".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Huawei.into(),
            quantity: 1,
            expected_price: Some(pb::Money {
                currency_code: "CNY".into(),
                amount_micros: 6_000_000,
            }),
            ..Default::default()
        })
        .await;
    let priced_id = priced.order.unwrap().order_id;
    let payload = priced.binding.unwrap().huawei_developer_payload;
    let cheap = w
        .huawei_buy(json!({ "developer_payload": payload, "price": 1 }))
        .await;
    assert_eq!(
        w.refused(huawei("p3", &cheap)).await,
        (Code::FailedPrecondition, "PRICE_MISMATCH".to_owned(), false)
    );
    let right = w
        .huawei_buy(json!({ "developer_payload": payload, "price": 600 }))
        .await;
    let paid = w.verify(huawei("p3", &right)).await.unwrap();
    assert_eq!(paid.order.unwrap().order_id, priced_id);

    // REPLAYED_FOR_OTHER_USER: p4 redeems, p5 replays the same purchase.
    let once = w.google_buy(json!({})).await;
    w.verify(google("p4", "", &once, "gems_100")).await.unwrap();
    assert_eq!(
        w.refused(google("p5", "", &once, "gems_100")).await,
        (
            Code::FailedPrecondition,
            "REPLAYED_FOR_OTHER_USER".to_owned(),
            true
        )
    );
    assert_eq!(
        w.stored_purchases().await,
        4,
        "only the four accepted purchases"
    );
}

#[tokio::test]
async fn proof_rejections_malformed_signature_sandbox_unknown_product() {
    let w = World::start().await;
    // MALFORMED: not a compact JWS at all; INVALID_ARGUMENT. The store said nothing about a
    // purchase, so the client keeps its transaction (finishing could drop a real one).
    assert_eq!(
        w.refused(apple_jws("p1", "not-a-jws")).await,
        (Code::InvalidArgument, "MALFORMED".to_owned(), false)
    );

    // Huawei purchase data that is not JSON: its signature no longer matches.
    let made = w.huawei_buy(json!({})).await;
    let mut broken = made.clone();
    broken["in_app_purchase_data"] = json!("{not json");
    let (code, reason, _) = w.refused(huawei("p1", &broken)).await;
    assert_eq!(
        reason, "SIGNATURE_INVALID",
        "the signature is checked before parsing"
    );
    assert_eq!(code, Code::FailedPrecondition);

    // SIGNATURE_INVALID: the Google JSON edited by the client.
    let bought = w.google_buy(json!({})).await;
    let mut forged = bought.clone();
    forged["original_json"] = json!(
        bought["original_json"]
            .as_str()
            .unwrap()
            .replace("\"quantity\"", "\"quantity \"")
    );
    assert_eq!(
        w.refused(google("p1", "", &forged, "gems_100")).await.1,
        "SIGNATURE_INVALID"
    );

    // SANDBOX_NOT_ALLOWED: a Huawei sandbox purchase from a player not on the list.
    let sandbox = w.huawei_buy(json!({ "sandbox": true })).await;
    assert_eq!(
        w.refused(huawei("p1", &sandbox)).await,
        (
            Code::FailedPrecondition,
            "SANDBOX_NOT_ALLOWED".to_owned(),
            true
        )
    );
    assert!(w.verify(huawei("tester", &sandbox)).await.unwrap().sandbox);

    // UNKNOWN_PRODUCT: named by the request but not in the catalog (yet: a catalog rollout
    // still to come grants it), so the client keeps its transaction.
    assert_eq!(
        w.refused(google("p1", "", &bought, "gems_999")).await,
        (
            Code::FailedPrecondition,
            "UNKNOWN_PRODUCT".to_owned(),
            false
        )
    );

    // MALFORMED request fields: INVALID_ARGUMENT naming the field.
    let mut empty = google("p1", "", &bought, "gems_100");
    empty.purchase = None;
    let status = w.verify(empty).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["field"],
        "purchase"
    );
    assert_eq!(
        w.stored_purchases().await,
        1,
        "only the allowed sandbox purchase"
    );
}

#[tokio::test]
async fn store_outages_answer_unavailable_and_change_nothing() {
    let w = World::start().await;
    let order = w.create_order("p1", "gems_100", pb::Platform::Google).await;
    let order_id = order.order.unwrap().order_id;
    let bought = w.google_buy(json!({})).await;
    w.store
        .post_json(
            "/emulator/faults",
            json!({ "path_prefix": "/google/androidpublisher", "kind": "http503", "count": 20 }),
        )
        .await;
    let status = w
        .verify(google("p1", &order_id, &bought, "gems_100"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "STORE_UNAVAILABLE"
    );
    assert!(status.get_details_retry_info().is_some(), "retry advice");
    assert_eq!(w.order_state(&order_id).await, pb::OrderState::Created);
    assert_eq!(w.stored_purchases().await, 0);

    // The store is back: the same request now pays the order.
    reqwest::Client::new()
        .delete(format!("{}/emulator/faults", w.store.base))
        .send()
        .await
        .unwrap();
    let paid = w
        .verify(google("p1", &order_id, &bought, "gems_100"))
        .await
        .unwrap();
    assert_eq!(paid.order.unwrap().order_id, order_id);
}
