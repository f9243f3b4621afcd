//! What operators may see of a purchase token: enough to tell two apart, never enough to use
//! one.

use super::{AdminError, Administration};
use crate::admin::AdminStore;
use crate::delivery::DeliveryStore;
use crate::ids::OrderId;
use crate::order::Order;
use crate::ports::OrderRepository;

/// Shows the start and end of a token, enough to tell two apart, never enough to use one.
pub fn mask_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Orders as operators may see them: a store transaction id that is a purchase token (as
    /// Google's often is) is masked.
    pub(super) async fn redacted(&self, mut orders: Vec<Order>) -> Result<Vec<Order>, AdminError> {
        let ids: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
        let tokens = self.store.purchase_tokens(&ids).await?;
        for order in &mut orders {
            if let Some(id) = &mut order.store_transaction_id
                && tokens.contains(id)
            {
                *id = mask_token(id);
            }
        }
        Ok(orders)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_tokens_keep_neither_middle_nor_short_values() {
        let token = "abcdefghijklmnopqrstuvwxyz.AO-J1Oz";
        let masked = mask_token(token);
        assert_eq!(masked, "abcdef…J1Oz");
        assert_eq!(mask_token("short"), "…");
    }
}
