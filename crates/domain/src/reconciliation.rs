//! Reconciliation with the stores (the server-side 补单): what a store's own history says
//! happened — notifications it sent that never reached us, purchases it voided — pulled for
//! recent windows and fed into the same paths a live notification takes, so a purchase whose
//! client died and whose notification was lost is still granted, and a refund we never heard of is
//! still taken back.

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{JobCursors, StoreChange, StoreHistory};
