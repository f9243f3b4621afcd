//! Order locks: a Redis lease lock (SET NX PX, token-checked release, guard-owned renewal) and an in-process lock.
