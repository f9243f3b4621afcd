//! Test harness: per-test PostgreSQL databases, Redis prefixes, in-process services (dev-dependency only).
