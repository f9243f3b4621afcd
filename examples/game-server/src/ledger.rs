//! The idempotent grant/revoke ledger: the game's own store of what each player was given.
//!
//! Every applied grant or revoke is one JSON line appended to the ledger file and flushed to disk
//! (`sync_data`) before the call returns, so an OK reply always describes a durable effect. On open
//! the file is replayed to rebuild the keys, the inventory and the references. A studio replaces
//! this file with its own database; what must survive is the rule that the idempotency key is
//! written in the same transaction as the effect.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A grant as the delivery service asks for it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantRequest {
    /// Idempotency key, stable for the order across every retry.
    pub grant_id: String,
    /// The IAP system's order id.
    pub order_id: String,
    /// The game (app) the player belongs to.
    pub app_id: String,
    /// The player.
    pub user_id: String,
    /// The purchased product.
    pub product_id: String,
    /// How many units of the product; at least 1.
    pub quantity: i32,
}

/// A revocation as the delivery service asks for it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevokeRequest {
    /// Idempotency key of the revocation.
    pub revoke_id: String,
    /// The grant being reversed.
    pub grant_id: String,
    /// The order of that grant; checked against the grant when both are known.
    pub order_id: String,
    /// The game; checked against the grant when both are known.
    pub app_id: String,
    /// The player; checked against the grant when both are known.
    pub user_id: String,
    /// The product; checked against the grant when both are known.
    pub product_id: String,
    /// Units to take back; 0 means everything the grant still holds.
    pub quantity: i32,
}

/// One applied grant, as stored in the ledger file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// Position of the record in the ledger (1-based, shared by grants and revokes).
    pub seq: u64,
    /// The game's reference for the grant, returned to every caller of this `grant_id`.
    pub reference: String,
    /// Idempotency key.
    pub grant_id: String,
    /// The IAP system's order id.
    pub order_id: String,
    /// The game.
    pub app_id: String,
    /// The player.
    pub user_id: String,
    /// The product.
    pub product_id: String,
    /// Units granted.
    pub quantity: u32,
    /// When the grant was applied (unix milliseconds).
    pub applied_at_ms: i64,
}

/// One applied revoke, as stored in the ledger file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeEntry {
    /// Position of the record in the ledger (1-based, shared by grants and revokes).
    pub seq: u64,
    /// The game's reference for the revoke, returned to every caller of this `revoke_id`.
    pub reference: String,
    /// Idempotency key.
    pub revoke_id: String,
    /// The grant being reversed.
    pub grant_id: String,
    /// The order, from the grant when it is known, else as requested.
    pub order_id: String,
    /// The game, from the grant when it is known, else as requested.
    pub app_id: String,
    /// The player, from the grant when it is known, else as requested.
    pub user_id: String,
    /// The product, from the grant when it is known, else as requested.
    pub product_id: String,
    /// Units asked for (0: everything the grant held).
    pub requested_quantity: u32,
    /// Units actually taken back; 0 when nothing was held (unknown or fully revoked grant).
    pub revoked_quantity: u32,
    /// When the revoke was applied (unix milliseconds).
    pub applied_at_ms: i64,
}

/// A subscription's entitlement as the delivery service last reported it: the game keeps the
/// highest version per subscription, so repeated and reordered updates change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementEntry {
    /// The subscription.
    pub subscription_id: String,
    /// Version of this state.
    pub version: i64,
    /// App.
    pub app_id: String,
    /// Player.
    pub user_id: String,
    /// Current product.
    pub product_id: String,
    /// State name (`active`, `grace`, `on_hold`, ...).
    pub state: String,
    /// Access until (unix milliseconds), 0 when there is none.
    pub access_until_ms: i64,
    /// When the ledger applied it (unix milliseconds).
    pub applied_at_ms: i64,
}

/// One line of the ledger file, as read back.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Grant(GrantEntry),
    Revoke(RevokeEntry),
    Entitlement(EntitlementEntry),
}

/// One line of the ledger file, as written (the same shape as [`Record`], borrowed).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RecordRef<'a> {
    Grant(&'a GrantEntry),
    Revoke(&'a RevokeEntry),
    Entitlement(&'a EntitlementEntry),
}

/// The answer to a grant or revoke call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The ledger reference of the first application of the key.
    pub reference: String,
    /// True when the key had already been applied and nothing changed now.
    pub duplicate: bool,
}

/// Counters of calls made to this ledger since it was opened (replayed records are not calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerStats {
    /// Every `grant` call, refused ones included.
    pub grant_calls: u64,
    /// Grants that changed the ledger.
    pub grant_effects: u64,
    /// Grants answered from an earlier application of the same `grant_id`.
    pub duplicate_grant_calls: u64,
    /// Every `revoke` call, refused ones included.
    pub revoke_calls: u64,
    /// Revokes that were recorded (no-op revokes of unknown grants included).
    pub revoke_effects: u64,
    /// Revokes answered from an earlier application of the same `revoke_id`.
    pub duplicate_revoke_calls: u64,
}

/// Why a grant or revoke was not applied.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The request is malformed; retrying it unchanged cannot succeed.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// The offending request field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The idempotency key was already applied with different content.
    #[error("{key} {id:?} was already applied with a different {field}")]
    KeyConflict {
        /// `grant_id` or `revoke_id`.
        key: &'static str,
        /// The key's value.
        id: String,
        /// The first field that differs.
        field: &'static str,
    },
    /// The revoke names a known grant but another order, game, player or product.
    #[error("revoke does not match grant {grant_id:?}: different {field}")]
    RevokeMismatch {
        /// The grant named by the revoke.
        grant_id: String,
        /// The first field that differs.
        field: &'static str,
    },
    /// The record could not be made durable; nothing was applied and the call may be retried.
    #[error("ledger write failed: {0}")]
    Write(#[source] io::Error),
    /// An earlier write failed in a way that left the file unknown; the ledger refuses writes
    /// until it is reopened (which replays and repairs the file).
    #[error("ledger is unwritable after an earlier write failure; restart to recover")]
    Unwritable,
}

/// Why a ledger file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened, read or repaired.
    #[error("ledger file {path}: {source}")]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A complete line (not a torn last line) does not hold a valid record. The ledger refuses
    /// to start rather than forget grants.
    #[error("ledger file {path}, line {line}: {problem}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// The idempotent grant/revoke ledger. Cheap to share behind an `Arc`; every method takes `&self`.
///
/// Calls block while a record is flushed to disk; async callers should run them on a blocking
/// thread (`tokio::task::spawn_blocking`), as [`crate::GameServer`] does.
#[derive(Debug)]
pub struct Ledger {
    // One lock over the key check, the file append and the in-memory update: two calls with the
    // same key can never both see it absent.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` in memory-only mode.
    file: Option<File>,
    /// Set when a failed append could not be rolled back.
    unwritable: bool,
    next_seq: u64,
    grants: Vec<GrantEntry>,
    grant_index: HashMap<String, usize>,
    revokes: Vec<RevokeEntry>,
    revoke_index: HashMap<String, usize>,
    /// Units already revoked per grant_id, so revokes never take back more than was granted.
    revoked_per_grant: HashMap<String, u32>,
    /// (app_id, user_id, product_id) → units held.
    balances: HashMap<(String, String, String), i64>,
    /// subscription id → the highest version applied.
    entitlements: HashMap<String, EntitlementEntry>,
    /// Updates applied (versions newer than the one held).
    entitlement_updates: u64,
    stats: LedgerStats,
}

impl Ledger {
    /// A ledger that keeps everything in memory: for tests and demos only, it forgets on exit.
    pub fn in_memory() -> Self {
        Self {
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
        }
    }

    /// Opens (or creates) a durable ledger file and replays it. A torn last line (a write cut
    /// short by a crash, never acknowledged) is dropped and truncated away; any other bad line is
    /// an error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let io_error = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        if !existed {
            // A new file's directory entry is durable only once the directory is synced;
            // without this a crash could lose the whole ledger after acknowledged grants.
            sync_parent_dir(path).map_err(io_error)?;
        }

        let mut state = State {
            next_seq: 1,
            ..State::default()
        };
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        let mut complete_len: u64 = 0;
        let mut line_no: u64 = 0;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(io_error)?;
            if read == 0 {
                break;
            }
            line_no += 1;
            if line.last() != Some(&b'\n') {
                // Records are written as "json\n" and acknowledged only after the whole write is
                // synced, so a line without its newline was never acknowledged: drop it.
                tracing::warn!(
                    line = line_no,
                    bytes = read,
                    "dropping torn last ledger line"
                );
                break;
            }
            complete_len += read as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record: Record = serde_json::from_slice(&line).map_err(|e| OpenError::Corrupt {
                path: path.to_owned(),
                line: line_no,
                problem: e.to_string(),
            })?;
            state.replay(record).map_err(|problem| OpenError::Corrupt {
                path: path.to_owned(),
                line: line_no,
                problem,
            })?;
        }
        drop(reader);

        let file_len = file.metadata().map_err(io_error)?.len();
        if file_len > complete_len {
            file.set_len(complete_len).map_err(io_error)?;
            file.sync_data().map_err(io_error)?;
        }
        // Append mode writes at the end regardless, but keep the cursor honest after truncation.
        file.seek(SeekFrom::End(0)).map_err(io_error)?;
        state.file = Some(file);
        tracing::info!(
            grants = state.grants.len(),
            revokes = state.revokes.len(),
            "ledger replayed"
        );
        Ok(Self {
            state: Mutex::new(state),
        })
    }

    /// Applies a grant once per `grant_id`. A repeat with the same content returns the first
    /// reference with `duplicate = true`; a repeat with other content is a [`LedgerError::KeyConflict`].
    pub fn grant(&self, request: &GrantRequest) -> Result<Outcome, LedgerError> {
        let mut state = self.lock();
        state.stats.grant_calls += 1;
        let quantity = validate_grant(request)?;

        if let Some(&index) = state.grant_index.get(&request.grant_id) {
            let first = &state.grants[index];
            if let Some(field) = grant_difference(first, request, quantity) {
                return Err(LedgerError::KeyConflict {
                    key: "grant_id",
                    id: request.grant_id.clone(),
                    field,
                });
            }
            let reference = first.reference.clone();
            state.stats.duplicate_grant_calls += 1;
            return Ok(Outcome {
                reference,
                duplicate: true,
            });
        }

        let seq = state.next_seq;
        let entry = GrantEntry {
            seq,
            reference: format!("g-{seq:08}"),
            grant_id: request.grant_id.clone(),
            order_id: request.order_id.clone(),
            app_id: request.app_id.clone(),
            user_id: request.user_id.clone(),
            product_id: request.product_id.clone(),
            quantity,
            applied_at_ms: now_ms(),
        };
        state.append(&RecordRef::Grant(&entry))?;
        let reference = entry.reference.clone();
        state.apply_grant(entry);
        state.stats.grant_effects += 1;
        Ok(Outcome {
            reference,
            duplicate: false,
        })
    }

    /// Applies a revoke once per `revoke_id`, taking back at most what the grant still holds.
    ///
    /// A revoke of a grant the ledger never saw is recorded as a no-op and answered OK: a refund
    /// can reach the game before (or instead of) the grant it reverses, and refusing it would make
    /// the delivery service retry forever. The reference says nothing was held, and the record
    /// keeps the fact for audit.
    pub fn revoke(&self, request: &RevokeRequest) -> Result<Outcome, LedgerError> {
        let mut state = self.lock();
        state.stats.revoke_calls += 1;
        let requested = validate_revoke(request)?;

        if let Some(&index) = state.revoke_index.get(&request.revoke_id) {
            let first = &state.revokes[index];
            if let Some(field) = revoke_difference(first, request, requested) {
                return Err(LedgerError::KeyConflict {
                    key: "revoke_id",
                    id: request.revoke_id.clone(),
                    field,
                });
            }
            let reference = first.reference.clone();
            state.stats.duplicate_revoke_calls += 1;
            return Ok(Outcome {
                reference,
                duplicate: true,
            });
        }

        let seq = state.next_seq;
        let grant = state
            .grant_index
            .get(&request.grant_id)
            .map(|&index| &state.grants[index]);
        let (order_id, app_id, user_id, product_id, revoked) = match grant {
            Some(grant) => {
                if let Some(field) = revoke_mismatch(grant, request) {
                    return Err(LedgerError::RevokeMismatch {
                        grant_id: request.grant_id.clone(),
                        field,
                    });
                }
                let already = state
                    .revoked_per_grant
                    .get(&grant.grant_id)
                    .copied()
                    .unwrap_or(0);
                let held = grant.quantity.saturating_sub(already);
                let revoked = if requested == 0 {
                    held
                } else {
                    requested.min(held)
                };
                (
                    grant.order_id.clone(),
                    grant.app_id.clone(),
                    grant.user_id.clone(),
                    grant.product_id.clone(),
                    revoked,
                )
            }
            None => (
                request.order_id.clone(),
                request.app_id.clone(),
                request.user_id.clone(),
                request.product_id.clone(),
                0,
            ),
        };
        let reference = if revoked == 0 {
            format!("r-{seq:08}:nothing-held")
        } else {
            format!("r-{seq:08}")
        };
        let entry = RevokeEntry {
            seq,
            reference,
            revoke_id: request.revoke_id.clone(),
            grant_id: request.grant_id.clone(),
            order_id,
            app_id,
            user_id,
            product_id,
            requested_quantity: requested,
            revoked_quantity: revoked,
            applied_at_ms: now_ms(),
        };
        state.append(&RecordRef::Revoke(&entry))?;
        let reference = entry.reference.clone();
        state.apply_revoke(entry);
        state.stats.revoke_effects += 1;
        Ok(Outcome {
            reference,
            duplicate: false,
        })
    }

    /// Number of distinct grants applied for an order (the exactly-once check: never above 1
    /// for a one-grant order).
    pub fn effects_for_order(&self, order_id: &str) -> u32 {
        let count = self
            .lock()
            .grants
            .iter()
            .filter(|g| g.order_id == order_id)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Units of a product the player holds: granted minus revoked.
    pub fn balance(&self, app_id: &str, user_id: &str, product_id: &str) -> i64 {
        let key = (app_id.to_owned(), user_id.to_owned(), product_id.to_owned());
        self.lock().balances.get(&key).copied().unwrap_or(0)
    }

    /// Call counters since the ledger was opened.
    pub fn stats(&self) -> LedgerStats {
        self.lock().stats
    }

    /// Every applied grant, in ledger order.
    pub fn grants(&self) -> Vec<GrantEntry> {
        self.lock().grants.clone()
    }

    /// Every applied revoke, in ledger order.
    pub fn revokes(&self) -> Vec<RevokeEntry> {
        self.lock().revokes.clone()
    }

    /// The grant applied under `grant_id`, if any.
    pub fn grant_entry(&self, grant_id: &str) -> Option<GrantEntry> {
        let state = self.lock();
        state
            .grant_index
            .get(grant_id)
            .map(|&index| state.grants[index].clone())
    }

    /// Applies a subscription's entitlement unless a version at least as high is held; `true`
    /// when it was already held (a repeat or an older update arriving late).
    pub fn update_entitlement(&self, mut entry: EntitlementEntry) -> Result<bool, LedgerError> {
        let mut state = self.lock();
        if state
            .entitlements
            .get(&entry.subscription_id)
            .is_some_and(|held| held.version >= entry.version)
        {
            return Ok(true);
        }
        entry.applied_at_ms = now_ms();
        state.append(&RecordRef::Entitlement(&entry))?;
        state.apply_entitlement(entry);
        Ok(false)
    }

    /// The entitlement held for a subscription.
    pub fn entitlement(&self, subscription_id: &str) -> Option<EntitlementEntry> {
        self.lock().entitlements.get(subscription_id).cloned()
    }

    /// Entitlement updates applied since the ledger was opened (replays included).
    pub fn entitlement_updates(&self) -> u64 {
        self.lock().entitlement_updates
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot have left a half-applied record: the in-memory
        // state changes only after the append succeeded, in code that does not panic. So the
        // data behind a poisoned lock is still consistent and the ledger keeps serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Writes one record and flushes it to disk. On failure the in-memory state is unchanged,
    /// and the file is cut back to its previous length so no partial line sits mid-file.
    fn append(&mut self, record: &RecordRef<'_>) -> Result<(), LedgerError> {
        if self.unwritable {
            return Err(LedgerError::Unwritable);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(record)
            .map_err(|e| LedgerError::Write(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        line.push(b'\n');

        let previous_len = file.metadata().map_err(LedgerError::Write)?.len();
        let written = file.write_all(&line).and_then(|()| file.sync_data());
        if let Err(error) = written {
            let rolled_back = file
                .set_len(previous_len)
                .and_then(|()| file.sync_data())
                .is_ok();
            if !rolled_back {
                self.unwritable = true;
            }
            return Err(LedgerError::Write(error));
        }
        Ok(())
    }

    /// Rebuilds state from a record read back from the file.
    fn replay(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Grant(entry) => {
                if self.grant_index.contains_key(&entry.grant_id) {
                    return Err(format!("grant_id {:?} recorded twice", entry.grant_id));
                }
                self.apply_grant(entry);
            }
            Record::Revoke(entry) => {
                if self.revoke_index.contains_key(&entry.revoke_id) {
                    return Err(format!("revoke_id {:?} recorded twice", entry.revoke_id));
                }
                self.apply_revoke(entry);
            }
            Record::Entitlement(entry) => self.apply_entitlement(entry),
        }
        Ok(())
    }

    fn apply_entitlement(&mut self, entry: EntitlementEntry) {
        let newer = self
            .entitlements
            .get(&entry.subscription_id)
            .is_none_or(|held| held.version < entry.version);
        if newer {
            self.entitlement_updates += 1;
            self.entitlements
                .insert(entry.subscription_id.clone(), entry);
        }
    }

    fn apply_grant(&mut self, entry: GrantEntry) {
        self.next_seq = self.next_seq.max(entry.seq + 1);
        let key = (
            entry.app_id.clone(),
            entry.user_id.clone(),
            entry.product_id.clone(),
        );
        *self.balances.entry(key).or_insert(0) += i64::from(entry.quantity);
        self.grant_index
            .insert(entry.grant_id.clone(), self.grants.len());
        self.grants.push(entry);
    }

    fn apply_revoke(&mut self, entry: RevokeEntry) {
        self.next_seq = self.next_seq.max(entry.seq + 1);
        if entry.revoked_quantity > 0 {
            let key = (
                entry.app_id.clone(),
                entry.user_id.clone(),
                entry.product_id.clone(),
            );
            *self.balances.entry(key).or_insert(0) -= i64::from(entry.revoked_quantity);
            *self
                .revoked_per_grant
                .entry(entry.grant_id.clone())
                .or_insert(0) += entry.revoked_quantity;
        }
        self.revoke_index
            .insert(entry.revoke_id.clone(), self.revokes.len());
        self.revokes.push(entry);
    }
}

fn validate_grant(request: &GrantRequest) -> Result<u32, LedgerError> {
    let required = [
        ("grant_id", &request.grant_id),
        ("order_id", &request.order_id),
        ("user_id", &request.user_id),
        ("product_id", &request.product_id),
    ];
    for (field, value) in required {
        if value.trim().is_empty() {
            return Err(LedgerError::InvalidArgument {
                field,
                problem: "must not be empty",
            });
        }
    }
    match u32::try_from(request.quantity) {
        Ok(quantity) if quantity >= 1 => Ok(quantity),
        _ => Err(LedgerError::InvalidArgument {
            field: "quantity",
            problem: "must be at least 1",
        }),
    }
}

fn validate_revoke(request: &RevokeRequest) -> Result<u32, LedgerError> {
    for (field, value) in [
        ("revoke_id", &request.revoke_id),
        ("grant_id", &request.grant_id),
    ] {
        if value.trim().is_empty() {
            return Err(LedgerError::InvalidArgument {
                field,
                problem: "must not be empty",
            });
        }
    }
    u32::try_from(request.quantity).map_err(|_| LedgerError::InvalidArgument {
        field: "quantity",
        problem: "must not be negative (0 revokes the whole grant)",
    })
}

/// The first field in which a repeated grant differs from the first one.
fn grant_difference(
    first: &GrantEntry,
    request: &GrantRequest,
    quantity: u32,
) -> Option<&'static str> {
    if first.order_id != request.order_id {
        Some("order_id")
    } else if first.app_id != request.app_id {
        Some("app_id")
    } else if first.user_id != request.user_id {
        Some("user_id")
    } else if first.product_id != request.product_id {
        Some("product_id")
    } else if first.quantity != quantity {
        Some("quantity")
    } else {
        None
    }
}

/// The first field in which a repeated revoke differs from the first one. Empty optional fields
/// in the repeat are not compared, because the stored entry may have filled them from the grant.
fn revoke_difference(
    first: &RevokeEntry,
    request: &RevokeRequest,
    requested: u32,
) -> Option<&'static str> {
    if first.grant_id != request.grant_id {
        return Some("grant_id");
    }
    if first.requested_quantity != requested {
        return Some("quantity");
    }
    optional_field_difference(
        [
            ("order_id", &first.order_id),
            ("app_id", &first.app_id),
            ("user_id", &first.user_id),
            ("product_id", &first.product_id),
        ],
        request,
    )
}

/// The first field a revoke sets to something other than the grant it names.
fn revoke_mismatch(grant: &GrantEntry, request: &RevokeRequest) -> Option<&'static str> {
    optional_field_difference(
        [
            ("order_id", &grant.order_id),
            ("app_id", &grant.app_id),
            ("user_id", &grant.user_id),
            ("product_id", &grant.product_id),
        ],
        request,
    )
}

fn optional_field_difference(
    known: [(&'static str, &String); 4],
    request: &RevokeRequest,
) -> Option<&'static str> {
    let asked = [
        &request.order_id,
        &request.app_id,
        &request.user_id,
        &request.product_id,
    ];
    known
        .into_iter()
        .zip(asked)
        .find(|((_, known), asked)| !asked.is_empty() && known != asked)
        .map(|((field, _), _)| field)
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing here; the file system's own ordering applies.
    Ok(())
}

fn now_ms() -> i64 {
    // A clock before 1970 only affects the audit timestamp, never the ledger's decisions.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
