//! The interfaces the use cases need from the outside world, one file per family of them.
//! Adapters implement them: `iap-storage` (database), `iap-lock` (locks), `iap-platform-*`
//! (stores), and the services (game server client, delivery trigger). Everything is re-exported
//! here, so `iap_domain::ports::X` names any port; the domain's value types (orders, purchases,
//! subscriptions ...) stay in their own modules.

mod admin;
mod deliveries;
mod delivery_requests;
mod error;
mod game;
mod inbox;
mod jobs;
mod locks;
mod orders;
mod payments;
mod refunds;
mod store_history;
mod store_notifications;
mod stores;
mod subscriptions;
mod unclaimed;

pub use admin::{AdminStore, CompensationRecord, CompensationTarget, PriorCompensation};
pub use deliveries::{
    Claim, ClaimedOrder, DeliveryRecord, DeliveryStore, Failure, RevocationClaim, RevokedDetail,
};
pub use delivery_requests::{DeliveryTrigger, OrderRevoker, RevokeFailure};
pub use error::StorageError;
pub use game::{GameAck, GameError, GameServer, GrantCommand, GrantReason, RevokeCommand};
pub use inbox::{InboundNotification, NotificationInbox, StoredNotification};
pub use jobs::JobCursors;
pub use locks::{Lease, LockError, WorkLock};
pub use orders::{CreateOutcome, OrderRepository};
pub use payments::{
    MarkOutcome, PaymentLedger, PaymentTarget, PaymentToRecord, RecordOutcome, RecordedPurchase,
    RefundMark,
};
pub use refunds::{RefundReversals, ReversalOutcome};
pub use store_history::{StoreChange, StoreHistory};
pub use store_notifications::{
    ConsumptionReport, ConsumptionResponder, NotificationDecoder, RefundConfirmation,
};
pub use stores::{
    ConfirmOutcome, PurchaseToConfirm, PurchaseVerifier, StoreConfirmer, StoreError, VerifyContext,
};
pub use subscriptions::SubscriptionStore;
pub use unclaimed::{ClaimOutcome, ClaimToRecord, KeepOutcome, UnclaimedStore, UnclaimedToKeep};
