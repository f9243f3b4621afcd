//! CreateOrder: open an order before the purchase starts, so the purchase can carry its id.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::ids::{AppId, IdError, OrderId, ProductId, UserId};
use crate::order::{Money, NewOrder, Order, Platform};
use crate::ports::{CreateOutcome, OrderRepository, StorageError};

/// Most metadata entries an order may carry, and their size limits.
pub const MAX_METADATA_ENTRIES: usize = 16;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_VALUE: usize = 512;
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A validated CreateOrder request.
#[derive(Debug, Clone)]
pub struct CreateOrder {
    /// App.
    pub app_id: AppId,
    /// Buyer.
    pub user_id: UserId,
    /// Product.
    pub product_id: ProductId,
    /// Store.
    pub platform: Platform,
    /// Units (0 is read as 1).
    pub quantity: u32,
    /// Price shown to the player.
    pub expected_price: Option<Money>,
    /// Makes retries of CreateOrder return the same order.
    pub idempotency_key: Option<String>,
    /// Labels.
    pub metadata: BTreeMap<String, String>,
}

/// The values a client attaches to the store purchase so it carries our order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseBinding {
    /// Apple `appAccountToken`.
    pub apple_app_account_token: String,
    /// Google `obfuscatedAccountId`: a hash of app and user (Google forbids PII there).
    pub google_obfuscated_account_id: String,
    /// Google `obfuscatedProfileId`.
    pub google_obfuscated_profile_id: String,
    /// Huawei `developerPayload`.
    pub huawei_developer_payload: String,
}

impl PurchaseBinding {
    /// The binding values for an order.
    pub fn for_order(order: &Order) -> Self {
        let id = order.id.to_string();
        Self {
            apple_app_account_token: id.clone(),
            google_obfuscated_account_id: obfuscated_account_id(&order.app_id, &order.user_id),
            google_obfuscated_profile_id: id.clone(),
            huawei_developer_payload: id,
        }
    }
}

/// Google's `obfuscatedAccountId` for a user: SHA-256 of app and user, hex, 64 characters
/// (Google's limit). Stable, so it also identifies the user's store account across purchases.
pub fn obfuscated_account_id(app: &AppId, user: &UserId) -> String {
    let digest = Sha256::new()
        .chain_update(app.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(user.as_str().as_bytes())
        .finalize();
    hex::encode(digest)
}

/// What CreateOrder returns.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedOrder {
    /// The order (new, or the earlier one for a repeated idempotency key).
    pub order: Order,
    /// Values for the client.
    pub binding: PurchaseBinding,
    /// True when the idempotency key had been used before.
    pub existing: bool,
}

/// Why CreateOrder failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    /// A field is malformed.
    #[error(transparent)]
    InvalidField(#[from] IdError),
    /// A store identifier is outside its store's format.
    #[error(transparent)]
    InvalidIdentifier(#[from] crate::store_ids::StoreIdError),
    /// Some other argument is out of range.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// Field.
        field: &'static str,
        /// Problem.
        problem: String,
    },
    /// The app is not configured.
    #[error("unknown app {0}")]
    UnknownApp(AppId),
    /// The product is not in the app's catalog.
    #[error("product {product} is not in the catalog of app {app}")]
    UnknownProduct {
        /// App.
        app: AppId,
        /// Product.
        product: ProductId,
    },
    /// A purchase limit was hit.
    #[error("purchase limit: {0}")]
    LimitExceeded(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Creates orders.
#[derive(Debug, Clone)]
pub struct OrderCreator<R> {
    catalog: Arc<Catalog>,
    orders: R,
}

impl<R: OrderRepository> OrderCreator<R> {
    /// A creator over a catalog and an order store.
    pub fn new(catalog: Arc<Catalog>, orders: R) -> Self {
        Self { catalog, orders }
    }

    /// Validates against the catalog and limits, then stores the order.
    #[tracing::instrument(name = "create_order", skip_all, fields(app_id = %cmd.app_id, platform = %cmd.platform, order_id), err(level = "info", Display))]
    pub async fn create(&self, cmd: CreateOrder) -> Result<CreatedOrder, CreateOrderError> {
        // The product id is the store's: refused before the catalog is asked, so a spelling the
        // store would not issue never reaches a lookup or a log.
        crate::store_ids::product_id(cmd.platform, "product_id", cmd.product_id.as_str())?;
        let app = self
            .catalog
            .app(&cmd.app_id)
            .ok_or_else(|| CreateOrderError::UnknownApp(cmd.app_id.clone()))?;
        let product =
            app.product(&cmd.product_id)
                .ok_or_else(|| CreateOrderError::UnknownProduct {
                    app: cmd.app_id.clone(),
                    product: cmd.product_id.clone(),
                })?;

        let quantity = cmd.quantity.max(1);
        if quantity > product.max_quantity {
            return Err(CreateOrderError::InvalidArgument {
                field: "quantity",
                problem: format!(
                    "at most {} per order for this product",
                    product.max_quantity
                ),
            });
        }
        validate_metadata(&cmd.metadata)?;
        if let Some(price) = &cmd.expected_price {
            validate_price(price)?;
        }
        let idempotency_key = match cmd.idempotency_key {
            Some(k) if k.len() > MAX_IDEMPOTENCY_KEY => {
                return Err(CreateOrderError::InvalidArgument {
                    field: "idempotency_key",
                    problem: format!("longer than {MAX_IDEMPOTENCY_KEY} bytes"),
                });
            }
            Some(k) if k.is_empty() => None,
            other => other,
        };

        // The limit is checked before the insert, so a burst can overshoot it by the number of
        // concurrent requests; it guards against runaway clients, not against a determined one.
        if app.max_open_orders_per_user > 0 && idempotency_key.is_none() {
            let open = self
                .orders
                .count_unpaid_orders(&cmd.app_id, &cmd.user_id)
                .await?;
            if open >= u64::from(app.max_open_orders_per_user) {
                return Err(CreateOrderError::LimitExceeded(format!(
                    "user already has {open} unpaid orders (limit {})",
                    app.max_open_orders_per_user
                )));
            }
        }

        let new = NewOrder {
            id: OrderId::new(),
            app_id: cmd.app_id,
            user_id: cmd.user_id,
            product_id: cmd.product_id,
            platform: cmd.platform,
            quantity,
            product_kind: product.kind,
            expected_price: cmd.expected_price,
            metadata: cmd.metadata,
            idempotency_key,
            manual: false,
        };
        let (order, existing) = match self.orders.create_order(new).await? {
            CreateOutcome::Created(o) => (o, false),
            CreateOutcome::Existing(o) => (o, true),
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        metrics::counter!("iap_orders_created_total", "platform" => order.platform.as_str(), "existing" => if existing { "true" } else { "false" }).increment(1);
        let binding = PurchaseBinding::for_order(&order);
        Ok(CreatedOrder {
            order,
            binding,
            existing,
        })
    }
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), CreateOrderError> {
    let bad = |problem: String| CreateOrderError::InvalidArgument {
        field: "metadata",
        problem,
    };
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(bad(format!("at most {MAX_METADATA_ENTRIES} entries")));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > MAX_METADATA_KEY {
            return Err(bad(format!("keys must be 1..={MAX_METADATA_KEY} bytes")));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(bad(format!(
                "value of {k:?} is longer than {MAX_METADATA_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

fn validate_price(price: &Money) -> Result<(), CreateOrderError> {
    let code_ok =
        price.currency.len() == 3 && price.currency.bytes().all(|b| b.is_ascii_uppercase());
    if !code_ok {
        return Err(CreateOrderError::InvalidArgument {
            field: "expected_price.currency_code",
            problem: "must be an ISO 4217 code such as USD".into(),
        });
    }
    if price.amount_micros < 0 {
        return Err(CreateOrderError::InvalidArgument {
            field: "expected_price.amount_micros",
            problem: "must not be negative".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscated_account_id_fits_google_limit_and_hides_the_user() {
        let id = obfuscated_account_id(
            &AppId::parse("game").unwrap(),
            &UserId::parse("alice@example.com").unwrap(),
        );
        assert_eq!(id.len(), 64);
        assert!(!id.contains("alice"));
    }

    #[test]
    fn prices_need_an_iso_code() {
        assert!(
            validate_price(&Money {
                currency: "usd".into(),
                amount_micros: 1
            })
            .is_err()
        );
        assert!(
            validate_price(&Money {
                currency: "USD".into(),
                amount_micros: -1
            })
            .is_err()
        );
        assert!(
            validate_price(&Money {
                currency: "USD".into(),
                amount_micros: 990_000
            })
            .is_ok()
        );
    }
}
