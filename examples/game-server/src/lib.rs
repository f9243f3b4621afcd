//! Reference game server implementing GameServerService with an idempotent ledger.
