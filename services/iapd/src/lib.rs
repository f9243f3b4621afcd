//! iapd: every role in one process; the embedded default (SQLite, in-process lock).
