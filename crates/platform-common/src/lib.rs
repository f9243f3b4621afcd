//! What the three store adapters (App Store, Google Play, Huawei) have in common, so that each
//! of them carries only what its store does differently: the per-app construction from
//! `[apps.<id>.<store>]` settings over one HTTP client (`apps`), the walk through a store's
//! paged lists by continuation token (`pages`), and the digest their inbox keys use (`digest`).
//!
//! The domain stays free of transport crates; this crate is where the adapters' HTTP plumbing
//! is shared.

pub mod apps;
pub mod digest;
pub mod pages;

pub use apps::{ConfigError, Store, build_apps};
pub use digest::sha256_hex;
pub use pages::{Page, collect_pages};
