//! Players buying, the way game clients do: CreateOrder, pay at the store (the emulator), then
//! VerifyPurchase, retrying what looks transient. Some die after paying, some are refunded
//! later, some never pay, some pay with a sandbox account the app does not accept, and some
//! send the same purchase several times at once.

use std::time::{Duration, Instant};

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::{APP, HUAWEI_APP, PRODUCT};

/// The store a purchase is made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Store {
    /// App Store (production environment; signed transactions).
    Apple,
    /// Google Play.
    Google,
    /// Huawei AppGallery.
    Huawei,
}

impl Store {
    pub(crate) const ALL: [Store; 3] = [Store::Apple, Store::Google, Store::Huawei];

    fn platform(self) -> pb::Platform {
        match self {
            Store::Apple => pb::Platform::Apple,
            Store::Google => pb::Platform::Google,
            Store::Huawei => pb::Platform::Huawei,
        }
    }
}

/// What the player does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fate {
    /// Pays and verifies (retrying transient errors for a while).
    Verifies,
    /// Pays, then the app dies before VerifyPurchase: only the store's notification (and
    /// reconciliation) can tell us.
    DiesAfterPaying,
    /// Pays and sends VerifyPurchase three times at once (a retry storm).
    VerifiesThriceAtOnce,
    /// Pays, verifies, and is refunded once the item arrived.
    Refunded,
    /// Creates an order and never pays.
    Abandons,
    /// The payment stays pending at the store (Google and Huawei) and never completes; at the
    /// App Store, which has no pending state here, the player abandons instead.
    PaymentPending,
    /// Pays with a sandbox/test account, which the app does not accept.
    SandboxNotAllowed,
}

impl Fate {
    /// Draws a fate with the soak's mix.
    pub(crate) fn draw(rng: &mut StdRng) -> Self {
        match rng.gen_range(0..100) {
            0..=49 => Fate::Verifies,
            50..=64 => Fate::DiesAfterPaying,
            65..=71 => Fate::VerifiesThriceAtOnce,
            72..=83 => Fate::Refunded,
            84..=89 => Fate::Abandons,
            90..=94 => Fate::PaymentPending,
            _ => Fate::SandboxNotAllowed,
        }
    }
}

/// One purchase as the player and the store saw it: what the checker holds the system to.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// Position in the run.
    pub index: usize,
    /// Where it was made.
    pub store: Store,
    /// What the player did.
    pub fate: Fate,
    /// The player (one per purchase, so balances are per purchase).
    pub user_id: String,
    /// Our order, once CreateOrder answered.
    pub order_id: Option<String>,
    /// The store's handle: Apple transaction id, Google or Huawei purchase token.
    pub store_ref: Option<String>,
    /// The store took the money and kept it (not pending, not refunded, not sandbox).
    pub paid: bool,
    /// The store refunded it.
    pub refunded: bool,
    /// The client stopped retrying VerifyPurchase without an answer.
    pub client_gave_up: bool,
    /// VerifyPurchase calls that failed transiently (UNAVAILABLE and the like).
    pub transient_errors: u32,
}

impl Purchase {
    /// The store and the player's intent both say the item is owed.
    pub fn owed(&self) -> bool {
        self.paid && !self.refunded
    }
}

/// gRPC codes a client retries.
fn transient(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
    )
}

/// What a shopper needs.
#[derive(Debug, Clone)]
pub(crate) struct Shop {
    pub(crate) verifier: Channel,
    pub(crate) emulator: String,
    pub(crate) http: reqwest::Client,
    /// How long a client keeps retrying one call before it gives up.
    pub(crate) patience: Duration,
}

impl Shop {
    /// Calls `call` until it answers or fails for good, or patience runs out (`None`); counts
    /// the transient failures in `errors`.
    async fn retrying<T, F, Fut>(
        &self,
        errors: &mut u32,
        mut call: F,
    ) -> Option<Result<T, tonic::Status>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.patience;
        let mut pause = Duration::from_millis(100);
        loop {
            match call().await {
                Err(status) if transient(&status) => {
                    *errors += 1;
                    if Instant::now() + pause > deadline {
                        return None;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return Some(other),
            }
        }
    }

    async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let reply = self
            .http
            .post(format!("{}/emulator{path}", self.emulator))
            .json(&body)
            .send()
            .await?;
        if !reply.status().is_success() {
            anyhow::bail!("emulator {path}: {}", reply.status());
        }
        Ok(reply.json().await.unwrap_or(Value::Null))
    }

    /// Plays one purchase to its end (as far as the player is concerned).
    pub(crate) async fn play(&self, mut purchase: Purchase) -> Purchase {
        if let Err(e) = self.play_inner(&mut purchase).await {
            // The emulator's control API is the harness's own; a failure there is a harness
            // fault, reported and not blamed on the system.
            eprintln!("purchase {}: harness error: {e:#}", purchase.index);
        }
        purchase
    }

    async fn play_inner(&self, purchase: &mut Purchase) -> anyhow::Result<()> {
        let request = pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: purchase.user_id.clone(),
            product_id: PRODUCT.into(),
            platform: purchase.store.platform().into(),
            quantity: 1,
            ..Default::default()
        };
        let client = OrderServiceClient::new(self.verifier.clone());
        let created = self
            .retrying(&mut purchase.transient_errors, || {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.create_order(request).await }
            })
            .await;
        let Some(Ok(created)) = created else {
            // The game never got an order; the player could not start paying.
            purchase.client_gave_up = true;
            return Ok(());
        };
        let created = created.into_inner();
        let order_id = created.order.map(|o| o.order_id).unwrap_or_default();
        let binding = created.binding.unwrap_or_default();
        purchase.order_id = Some(order_id.clone());

        let fate = match (purchase.fate, purchase.store) {
            (Fate::PaymentPending, Store::Apple) => Fate::Abandons,
            (fate, _) => fate,
        };
        if fate == Fate::Abandons {
            return Ok(());
        }
        let sandbox = fate == Fate::SandboxNotAllowed;
        let pending = fate == Fate::PaymentPending;
        let (store_ref, verify) = self.pay(purchase.store, &binding, sandbox, pending).await?;
        purchase.store_ref = Some(store_ref.clone());
        purchase.paid = !sandbox && !pending;

        match fate {
            Fate::DiesAfterPaying => {}
            Fate::VerifiesThriceAtOnce => {
                let calls = (0..3).map(|_| self.verify(purchase, verify.clone()));
                let results = futures::future::join_all(calls).await;
                purchase.transient_errors += results.iter().map(|(_, errors)| errors).sum::<u32>();
                purchase.client_gave_up = results.iter().all(|(answered, _)| !answered);
            }
            _ => {
                let (answered, errors) = self.verify(purchase, verify).await;
                purchase.transient_errors += errors;
                purchase.client_gave_up = !answered;
            }
        }

        if fate == Fate::Refunded && self.wait_delivered(&order_id).await {
            let path = match purchase.store {
                Store::Apple => format!("/apple/transactions/{store_ref}/refund"),
                Store::Google => format!("/google/purchases/{store_ref}/refund"),
                Store::Huawei => format!("/huawei/purchases/{store_ref}/refund"),
            };
            self.control(&path, json!({})).await?;
            purchase.refunded = true;
        }
        Ok(())
    }

    /// Pays at the store with the order's binding; returns the store's handle and the
    /// VerifyPurchase request the client would send.
    async fn pay(
        &self,
        store: Store,
        binding: &pb::PurchaseBinding,
        sandbox: bool,
        pending: bool,
    ) -> anyhow::Result<(String, pb::verify_purchase_request::Purchase)> {
        use pb::verify_purchase_request::Purchase as Proof;
        Ok(match store {
            Store::Apple => {
                let made = self
                    .control(
                        "/apple/purchases",
                        json!({ "bundle_id": APP, "product_id": PRODUCT,
                            "product_type": "Consumable",
                            "app_account_token": binding.apple_app_account_token,
                            "environment": if sandbox { "Sandbox" } else { "Production" } }),
                    )
                    .await?;
                (
                    text(&made, "transaction_id")?,
                    Proof::Apple(pb::ApplePurchase {
                        proof: Some(pb::apple_purchase::Proof::SignedTransaction(text(
                            &made,
                            "signed_transaction",
                        )?)),
                        product_id: PRODUCT.into(),
                        ..Default::default()
                    }),
                )
            }
            Store::Google => {
                let made = self
                    .control(
                        "/google/purchases",
                        json!({ "package_name": APP, "product_id": PRODUCT, "kind": "inapp",
                            "obfuscated_account_id": binding.google_obfuscated_account_id,
                            "obfuscated_profile_id": binding.google_obfuscated_profile_id,
                            "test_purchase": sandbox, "pending": pending }),
                    )
                    .await?;
                (
                    text(&made, "purchase_token")?,
                    Proof::Google(pb::GooglePurchase {
                        purchase_token: text(&made, "purchase_token")?,
                        product_id: PRODUCT.into(),
                        original_json: text(&made, "original_json")?,
                        signature: text(&made, "signature")?,
                    }),
                )
            }
            Store::Huawei => {
                let made = self
                    .control(
                        "/huawei/purchases",
                        json!({ "app_id": HUAWEI_APP, "product_id": PRODUCT, "kind": 0,
                            "developer_payload": binding.huawei_developer_payload,
                            "sandbox": sandbox, "pending": pending }),
                    )
                    .await?;
                (
                    text(&made, "purchase_token")?,
                    Proof::Huawei(pb::HuaweiPurchase {
                        purchase_token: text(&made, "purchase_token")?,
                        product_id: PRODUCT.into(),
                        in_app_purchase_data: text(&made, "in_app_purchase_data")?,
                        signature: text(&made, "data_signature")?,
                        signature_algorithm: made["signature_algorithm"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    }),
                )
            }
        })
    }

    /// VerifyPurchase until it answers (success or a definitive refusal) or patience runs out.
    /// Returns whether it answered, and the transient errors seen.
    async fn verify(
        &self,
        purchase: &Purchase,
        proof: pb::verify_purchase_request::Purchase,
    ) -> (bool, u32) {
        let request = pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: purchase.user_id.clone(),
            order_id: purchase.order_id.clone().unwrap_or_default(),
            purchase: Some(proof),
        };
        let client = VerificationServiceClient::new(self.verifier.clone());
        let mut errors = 0;
        let answer = self
            .retrying(&mut errors, || {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.verify_purchase(request).await }
            })
            .await;
        (answer.is_some(), errors)
    }

    /// Polls GetOrder until the order is delivered (or confirmed), for up to a minute.
    async fn wait_delivered(&self, order_id: &str) -> bool {
        let client = OrderServiceClient::new(self.verifier.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let reply = client
                .clone()
                .get_order(pb::GetOrderRequest {
                    order_id: order_id.to_owned(),
                })
                .await;
            if let Ok(reply) = reply
                && let Some(order) = reply.into_inner().order
                && matches!(
                    order.state(),
                    pb::OrderState::Delivered | pb::OrderState::Confirmed
                )
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }
}

fn text(value: &Value, key: &str) -> anyhow::Result<String> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("emulator reply without {key}"))
}
