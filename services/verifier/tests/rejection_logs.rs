//! A rejected VerifyPurchase is logged with what support needs to tie the line to a ticket: the
//! order id and the store's transaction id, masked; never the purchase token or the signed data.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use iap_domain::usecases::admin::mask_token;
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::json;

use common::{APP, Emulator, settings_from, start_with};

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// One thread: the verifier's tasks run where the capturing subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_rejection_names_the_order_and_the_masked_store_transaction() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let store = Emulator::start().await;
    let settings = settings_from(&format!(
        r#"
        [apps."{APP}"]
        sandbox = {{ allow_all = true }}
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        max_quantity = 10
        {}
        "#,
        store.store_settings_for(APP).await
    ));
    let verifier = start_with(settings).await;
    let mut orders = OrderServiceClient::new(verifier.channel.clone());
    let mut verification = VerificationServiceClient::new(verifier.channel.clone());
    let order_for = |user: &str| pb::CreateOrderRequest {
        app_id: APP.into(),
        user_id: user.into(),
        product_id: "gems_100".into(),
        platform: pb::Platform::Google.into(),
        quantity: 1,
        ..Default::default()
    };
    let alice = orders
        .create_order(order_for("alice"))
        .await
        .unwrap()
        .into_inner();
    let binding = alice.binding.unwrap();
    let bought = store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
                "obfuscated_account_id": binding.google_obfuscated_account_id,
                "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
        )
        .await;
    let redeem = |user: &str, order_id: &str| pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: order_id.into(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: bought["purchase_token"].as_str().unwrap().into(),
                product_id: "gems_100".into(),
                original_json: bought["original_json"].as_str().unwrap().into(),
                signature: bought["signature"].as_str().unwrap().into(),
            },
        )),
    };
    let alice_order = alice.order.unwrap().order_id;
    verification
        .verify_purchase(redeem("alice", &alice_order))
        .await
        .unwrap();

    // Mallory replays Alice's purchase against an order of his own.
    let mallory_order = orders
        .create_order(order_for("mallory"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
        .order_id;
    let refused = verification
        .verify_purchase(redeem("mallory", &mallory_order))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    let google_order_id = bought["order_id"].as_str().unwrap();
    let lines = captured.lines();
    let rejection = lines
        .iter()
        .find(|l| l.contains("verify_purchase") && l.contains(&mallory_order))
        .unwrap_or_else(|| panic!("no rejection line naming the order:\n{}", lines.join("\n")));
    assert!(
        rejection.contains(&format!(
            "store_transaction_id={}",
            mask_token(google_order_id)
        )),
        "{rejection}"
    );
    let all = lines.join("\n");
    for secret in [
        google_order_id,
        bought["purchase_token"].as_str().unwrap(),
        bought["signature"].as_str().unwrap(),
        bought["original_json"].as_str().unwrap(),
    ] {
        assert!(!all.contains(secret), "a full store value is logged: {all}");
    }
}
