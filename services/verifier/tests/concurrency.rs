//! 50 concurrent VerifyPurchase calls with the same purchase — client retries, a restore and a
//! second device at once — through gRPC against `iap-emulator` and PostgreSQL: one order, one
//! store transaction, one outbox event, and every caller told the same order.

mod common;

use std::collections::HashSet;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::{Value, json};
use tonic_types::StatusExt;

use common::{APP, Emulator, count_rows, settings_from, start_with};

const CALLS: usize = 50;

fn google(user: &str, made: &Value) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: "gems_100".into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_verifications_of_one_purchase_record_it_once() {
    let store = Emulator::start().await;
    let settings = settings_from(&format!(
        r#"
        [apps."{APP}"]
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        {}
        "#,
        store.store_settings_for(APP).await
    ));
    let verifier = start_with(settings).await;
    let orders = OrderServiceClient::new(verifier.channel.clone());
    let verification = VerificationServiceClient::new(verifier.channel.clone());

    // Scenario 1: one player, an open order carried by the purchase, 50 calls at once.
    let created = orders
        .clone()
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-1".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order_id = created.order.unwrap().order_id;
    let binding = created.binding.unwrap();
    let made = store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
                "obfuscated_account_id": binding.google_obfuscated_account_id,
                "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
        )
        .await;
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let mut client = verification.clone();
            let request = google("player-1", &made);
            tokio::spawn(async move { client.verify_purchase(request).await })
        })
        .collect();
    let mut order_ids = HashSet::new();
    let mut first_recordings = 0;
    for call in calls {
        let reply = call
            .await
            .unwrap()
            .expect("every retry succeeds")
            .into_inner();
        assert!(reply.finish_transaction);
        if !reply.already_recorded {
            first_recordings += 1;
        }
        order_ids.insert(reply.order.unwrap().order_id);
    }
    assert_eq!(
        order_ids,
        HashSet::from([order_id.clone()]),
        "one order for all"
    );
    assert_eq!(first_recordings, 1, "exactly one call recorded the payment");
    assert_eq!(
        count_rows(&verifier, "store_transactions", "1 = 1").await,
        1
    );
    assert_eq!(count_rows(&verifier, "orders", "state = 'PAID'").await, 1);
    assert_eq!(
        count_rows(&verifier, "outbox", "kind = 'order.paid'").await,
        1
    );

    // Scenario 2: no order, no carried id, two accounts racing with the same purchase: the first
    // commit wins, the other user is refused, and no stray order is left behind.
    let shared = store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp" }),
        )
        .await;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut client = verification.clone();
            let user = if i % 2 == 0 { "alice" } else { "mallory" };
            let request = google(user, &shared);
            tokio::spawn(async move { (user, client.verify_purchase(request).await) })
        })
        .collect();
    let (mut winners, mut order_ids, mut refused) = (HashSet::new(), HashSet::new(), 0);
    for call in calls {
        match call.await.unwrap() {
            (user, Ok(reply)) => {
                winners.insert(user);
                order_ids.insert(reply.into_inner().order.unwrap().order_id);
            }
            (_, Err(status)) => {
                assert_eq!(
                    status.get_details_error_info().unwrap().reason,
                    "REPLAYED_FOR_OTHER_USER"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "one user owns the purchase: {winners:?}");
    assert_eq!(order_ids.len(), 1);
    assert_eq!(
        refused,
        CALLS / 2,
        "every call of the other user is refused"
    );
    assert_eq!(
        count_rows(&verifier, "store_transactions", "1 = 1").await,
        2
    );
    assert_eq!(
        count_rows(&verifier, "orders", "1 = 1").await,
        2,
        "no stray orders"
    );
    assert_eq!(
        count_rows(&verifier, "outbox", "kind = 'order.paid'").await,
        2
    );
}
