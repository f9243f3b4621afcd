//! `iapd --demo`: one purchase per store, made the way a game does it — CreateOrder, a purchase
//! at the embedded emulator's store carrying the order's binding, VerifyPurchase with what the
//! store SDK would hand the client — then a wait until each order is granted by the reference
//! game server and confirmed, and a table of the result with the grpcurl commands to inspect it.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tonic::transport::Channel;

use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;

/// The product every demo purchase buys (a consumable: Google consumes it, Huawei confirms it).
const PRODUCT: &str = "gems_100";
/// The player the demo buys for.
const PLAYER: &str = "demo-player";
/// How long one order may take from VerifyPurchase to CONFIRMED before the demo gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the demo finds the running services.
#[derive(Debug, Clone)]
pub(crate) struct DemoTargets {
    /// iapd's gRPC address.
    pub(crate) grpc: SocketAddr,
    /// The embedded emulator's base URL.
    pub(crate) emulator: String,
    /// The demo app id (Apple bundle id and Google package name).
    pub(crate) app_id: String,
    /// The demo app's AppGallery Connect app id at the emulator.
    pub(crate) huawei_app_id: String,
}

/// One finished demo purchase.
#[derive(Debug, Clone)]
pub(crate) struct DemoOrder {
    /// `apple`, `google` or `huawei`.
    pub(crate) store: &'static str,
    /// Our order id.
    pub(crate) order_id: String,
    /// Its final state (`CONFIRMED`, or `DELIVERED` if the store confirmation is still due).
    pub(crate) state: pb::OrderState,
    /// The reference game server's ledger reference for the grant.
    pub(crate) game_ack_reference: String,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    #[error("{store}: {step}: {detail}")]
    Step {
        store: &'static str,
        step: &'static str,
        detail: String,
    },
}

fn failed(store: &'static str, step: &'static str) -> impl FnOnce(String) -> DemoError {
    move |detail| DemoError::Step {
        store,
        step,
        detail,
    }
}

/// Makes, verifies and waits for one purchase per store.
pub(crate) async fn run(targets: &DemoTargets) -> Result<Vec<DemoOrder>, DemoError> {
    let channel = Channel::from_shared(format!("http://{}", targets.grpc))
        .map_err(|e| failed("iapd", "connect")(e.to_string()))?
        .connect()
        .await
        .map_err(|e| failed("iapd", "connect")(e.to_string()))?;
    let http = reqwest::Client::new();
    let mut orders = Vec::new();
    for (store, platform) in [
        ("apple", pb::Platform::Apple),
        ("google", pb::Platform::Google),
        ("huawei", pb::Platform::Huawei),
    ] {
        let buyer = Buyer {
            store,
            targets,
            channel: channel.clone(),
            http: http.clone(),
        };
        orders.push(buyer.buy(platform).await?);
    }
    Ok(orders)
}

struct Buyer<'a> {
    store: &'static str,
    targets: &'a DemoTargets,
    channel: Channel,
    http: reqwest::Client,
}

impl Buyer<'_> {
    async fn buy(&self, platform: pb::Platform) -> Result<DemoOrder, DemoError> {
        let store = self.store;
        let created = OrderServiceClient::new(self.channel.clone())
            .create_order(pb::CreateOrderRequest {
                app_id: self.targets.app_id.clone(),
                user_id: PLAYER.into(),
                product_id: PRODUCT.into(),
                platform: platform.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(store, "CreateOrder")(e.message().to_owned()))?
            .into_inner();
        let order_id = created
            .order
            .map(|o| o.order_id)
            .ok_or_else(|| failed(store, "CreateOrder")("no order in the reply".into()))?;
        let binding = created.binding.unwrap_or_default();
        let purchase = self.purchase_at_store(platform, &binding).await?;
        let verified = VerificationServiceClient::new(self.channel.clone())
            .verify_purchase(pb::VerifyPurchaseRequest {
                app_id: self.targets.app_id.clone(),
                user_id: PLAYER.into(),
                order_id: order_id.clone(),
                purchase: Some(purchase),
            })
            .await
            .map_err(|e| failed(store, "VerifyPurchase")(e.message().to_owned()))?
            .into_inner();
        if !verified.finish_transaction {
            return Err(failed(store, "VerifyPurchase")(
                "the server did not tell the client to finish the transaction".into(),
            ));
        }
        self.settled(order_id).await
    }

    /// Buys at the emulator's store with the order's binding, and returns what the store SDK
    /// would hand the game client.
    async fn purchase_at_store(
        &self,
        platform: pb::Platform,
        binding: &pb::PurchaseBinding,
    ) -> Result<pb::verify_purchase_request::Purchase, DemoError> {
        use pb::verify_purchase_request::Purchase;
        let app = &self.targets.app_id;
        Ok(match platform {
            pb::Platform::Apple => {
                let made = self
                    .control(
                        "/emulator/apple/purchases",
                        json!({ "bundle_id": app, "product_id": PRODUCT, "product_type": "Consumable",
                            "app_account_token": binding.apple_app_account_token }),
                    )
                    .await?;
                Purchase::Apple(pb::ApplePurchase {
                    proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                        self.field(&made, "signed_transaction")?,
                    )),
                    ..Default::default()
                })
            }
            pb::Platform::Google => {
                let made = self
                    .control(
                        "/emulator/google/purchases",
                        json!({ "package_name": app, "product_id": PRODUCT, "kind": "inapp",
                            "obfuscated_account_id": binding.google_obfuscated_account_id,
                            "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
                    )
                    .await?;
                Purchase::Google(pb::GooglePurchase {
                    purchase_token: self.field(&made, "purchase_token")?,
                    product_id: PRODUCT.into(),
                    original_json: self.field(&made, "original_json")?,
                    signature: self.field(&made, "signature")?,
                })
            }
            _ => {
                let made = self
                    .control(
                        "/emulator/huawei/purchases",
                        json!({ "app_id": self.targets.huawei_app_id, "product_id": PRODUCT,
                            "kind": 0, "developer_payload": binding.huawei_developer_payload }),
                    )
                    .await?;
                Purchase::Huawei(pb::HuaweiPurchase {
                    purchase_token: self.field(&made, "purchase_token")?,
                    product_id: PRODUCT.into(),
                    in_app_purchase_data: self.field(&made, "in_app_purchase_data")?,
                    signature: self.field(&made, "data_signature")?,
                    signature_algorithm: self.field(&made, "signature_algorithm")?,
                })
            }
        })
    }

    async fn control(&self, path: &str, body: Value) -> Result<Value, DemoError> {
        let fail = || failed(self.store, "purchase at the emulator");
        let response = self
            .http
            .post(format!("{}{path}", self.targets.emulator))
            .json(&body)
            .send()
            .await
            .map_err(|e| fail()(e.without_url().to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(fail()(format!("HTTP {status}: {text}")));
        }
        response.json().await.map_err(|e| fail()(e.to_string()))
    }

    fn field(&self, made: &Value, name: &str) -> Result<String, DemoError> {
        made[name].as_str().map(str::to_owned).ok_or_else(|| {
            failed(self.store, "purchase at the emulator")(format!("no {name} in the reply"))
        })
    }

    /// Polls GetOrder until the order is CONFIRMED (granted and confirmed at the store); an
    /// order still DELIVERED at the deadline is granted and counts as delivered.
    async fn settled(&self, order_id: String) -> Result<DemoOrder, DemoError> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        let mut orders = OrderServiceClient::new(self.channel.clone());
        loop {
            let reply = orders
                .get_order(pb::GetOrderRequest {
                    order_id: order_id.clone(),
                })
                .await
                .map_err(|e| failed(self.store, "GetOrder")(e.message().to_owned()))?
                .into_inner();
            let state = reply
                .order
                .as_ref()
                .map_or(pb::OrderState::Unspecified, pb::Order::state);
            let delivered = matches!(state, pb::OrderState::Delivered | pb::OrderState::Confirmed);
            if state == pb::OrderState::Confirmed
                || (delivered && tokio::time::Instant::now() >= deadline)
            {
                let delivery = DeliveryServiceClient::new(self.channel.clone())
                    .get_delivery(pb::GetDeliveryRequest {
                        order_id: order_id.clone(),
                    })
                    .await
                    .map_err(|e| failed(self.store, "GetDelivery")(e.message().to_owned()))?
                    .into_inner();
                return Ok(DemoOrder {
                    store: self.store,
                    order_id,
                    state,
                    game_ack_reference: delivery
                        .delivery
                        .map(|d| d.game_ack_reference)
                        .unwrap_or_default(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(self.store, "delivery")(format!(
                    "order {order_id} is still {} after {SETTLE_TIMEOUT:?}",
                    state.as_str_name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The table and the commands to look further, as printed on stdout.
pub(crate) fn report(orders: &[DemoOrder], grpc: SocketAddr, metrics: SocketAddr) -> String {
    let mut out = String::from("\nDemo: one purchase per store, verified and delivered\n");
    out.push_str(&format!(
        "  {:<7} {:<37} {:<10} {:<10} {}\n",
        "store", "order id", "product", "state", "game ledger reference"
    ));
    for order in orders {
        let state = order.state.as_str_name().trim_start_matches("ORDER_STATE_");
        out.push_str(&format!(
            "  {:<7} {:<37} {:<10} {:<10} {}\n",
            order.store, order.order_id, PRODUCT, state, order.game_ack_reference
        ));
    }
    out.push_str("\nLook at them with grpcurl:\n");
    for order in orders {
        out.push_str(&format!(
            "  grpcurl -plaintext -d '{{\"order_id\":\"{}\"}}' {grpc} iap.v1.OrderService/GetOrder\n",
            order.order_id
        ));
    }
    if let Some(order) = orders.first() {
        out.push_str(&format!(
            "  grpcurl -plaintext -d '{{\"order_id\":\"{}\"}}' {grpc} iap.v1.DeliveryService/GetDelivery\n",
            order.order_id
        ));
    }
    out.push_str(&format!(
        "  curl -s http://{metrics}/metrics | grep -E '^iap_(orders|deliveries|verifications)'\n"
    ));
    out
}
