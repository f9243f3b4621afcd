//! The store-notification inbox as operators see it: list what arrived, replay one.

use serde_json::json;

use super::paging::{MAX_PAGE_SIZE, Page, PageToken};
use super::{Accountability, AdminError, Administration, invalid};
use crate::admin::{AdminStore, AuditEntry, InboxEntry, KeysetPosition};
use crate::delivery::DeliveryStore;
use crate::order::Platform;
use crate::ports::{OrderRepository, StorageError};

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Stored notifications, newest first.
    #[tracing::instrument(name = "admin.list_notifications", skip_all, err)]
    pub async fn list_notifications(
        &self,
        platform: Option<Platform>,
        only_unprocessed: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<InboxEntry>, AdminError> {
        let limit = page_size.clamp(1, MAX_PAGE_SIZE);
        let after = PageToken::decode("notifications", page_token)?.map(|t| t.position);
        let mut items = self
            .store
            .list_notifications(platform, only_unprocessed, after, limit + 1)
            .await?;
        let mut next_page_token = String::new();
        if items.len() > limit as usize {
            items.truncate(limit as usize);
            let last = &items[items.len() - 1];
            let id = uuid::Uuid::parse_str(&last.id)
                .map_err(|e| StorageError::Corrupt(format!("notifications.id: {e}")))?;
            next_page_token = PageToken {
                segment: 0,
                position: KeysetPosition {
                    at: last.received_at,
                    id,
                },
            }
            .encode("notifications");
        }
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Makes a stored notification due again; the inbox processor handles it as if it had just
    /// arrived. Processing is idempotent (a purchase already recorded is not recorded again, a
    /// revoked order is not revoked twice), so a replay repairs and never doubles.
    #[tracing::instrument(name = "admin.replay_notification", skip(self, operator, reason), err)]
    pub async fn replay_notification(
        &self,
        id: &str,
        operator: &str,
        reason: &str,
    ) -> Result<InboxEntry, AdminError> {
        let operator = Accountability::parse_operator(operator)?;
        // The reason is optional here: replaying changes no order by itself.
        let reason = match reason.trim() {
            "" => "replay requested".to_owned(),
            given => Accountability::parse_reason(given)?,
        };
        let id = id.trim();
        if id.is_empty() {
            return Err(invalid("id", "is required (from ListNotifications)"));
        }
        let uuid = uuid::Uuid::parse_str(id)
            .map_err(|_| invalid("id", "must be a stored notification id (UUID)"))?;
        let audit = AuditEntry {
            operator,
            action: "replay_notification",
            order_id: None,
            reason,
            detail: json!({ "notification": uuid.to_string() }),
            idempotency_key: None,
        };
        self.store
            .replay_notification(&uuid.to_string(), &audit)
            .await?
            .ok_or_else(|| AdminError::NotificationNotFound(uuid.to_string()))
    }
}
