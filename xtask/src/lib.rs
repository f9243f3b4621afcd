//! Project automation: cargo xtask ci, db helpers.
