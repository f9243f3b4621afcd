//! The invariants, checked against three independent records: the game's ledger (what players
//! actually hold), the store (what was paid, confirmed, refunded) and our database (order
//! states, the notification inbox).

use std::collections::{BTreeMap, HashMap, HashSet};

use iap_game_server::Ledger;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::Value;

use crate::shoppers::{Purchase, Store};
use crate::{APP, PRODUCT};

/// Order states that still owe work: the system must not leave an order in one of these.
const NOT_TERMINAL: [&str; 4] = ["PAID", "DELIVERING", "DELIVERED", "DEAD"];

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    /// Broken invariants, one line each (empty: the run passed).
    pub violations: Vec<String>,
    /// Orders per state in the database.
    pub orders_by_state: BTreeMap<String, i64>,
    /// Notifications received and not yet processed.
    pub inbox_backlog: i64,
    /// Notifications per processing outcome.
    pub inbox_outcomes: BTreeMap<String, i64>,
    /// Grants in the game's ledger.
    pub ledger_grants: usize,
    /// Revokes in the game's ledger that took something back.
    pub ledger_revokes: usize,
    /// The game server's call counters (calls, effects, calls answered as duplicates).
    pub game_calls: iap_game_server::LedgerStats,
}

/// Checks every invariant now: `purchases` as the players and the store saw them, against the
/// game's `ledger`, the database and the store (`emulator`).
pub async fn check(
    purchases: &[Purchase],
    ledger: &Ledger,
    db: &DatabaseConnection,
    http: &reqwest::Client,
    emulator: &str,
) -> anyhow::Result<Findings> {
    let mut found = Findings::default();
    let states = order_states(db).await?;
    for state in states.values() {
        *found.orders_by_state.entry(state.clone()).or_insert(0) += 1;
    }
    found.inbox_backlog = scalar(
        db,
        "SELECT COUNT(*) AS n FROM notifications WHERE processed_at IS NULL",
    )
    .await?;
    for row in db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT COALESCE(outcome, '(waiting)') AS outcome, COUNT(*) AS n FROM notifications GROUP BY 1",
        ))
        .await?
    {
        let outcome: String = row.try_get("", "outcome")?;
        // Outcomes name the order or token; group them without it.
        let kind = outcome
            .split_whitespace()
            .map(|word| {
                let id_like = word.len() >= 16 && word.chars().any(|c| c.is_ascii_digit());
                if id_like { "…" } else { word }
            })
            .collect::<Vec<_>>()
            .join(" ");
        *found.inbox_outcomes.entry(kind).or_insert(0) += row.try_get::<i64>("", "n")?;
    }
    let grants = ledger.grants();
    found.ledger_grants = grants.len();
    found.game_calls = ledger.stats();
    found.ledger_revokes = ledger
        .revokes()
        .iter()
        .filter(|r| r.revoked_quantity > 0)
        .count();

    let v = &mut found.violations;
    if found.inbox_backlog > 0 {
        v.push(format!(
            "{} store notifications received and not processed",
            found.inbox_backlog
        ));
    }
    for (order, state) in &states {
        if NOT_TERMINAL.contains(&state.as_str()) {
            v.push(format!("order {order} left in {state}"));
        }
    }

    let ours: HashMap<&str, &Purchase> = purchases
        .iter()
        .filter_map(|p| Some((p.order_id.as_deref()?, p)))
        .collect();
    let mut grants_per_order: HashMap<&str, usize> = HashMap::new();
    for grant in &grants {
        *grants_per_order.entry(grant.order_id.as_str()).or_insert(0) += 1;
        if !ours.contains_key(grant.order_id.as_str()) && !states.contains_key(&grant.order_id) {
            v.push(format!(
                "the game granted order {} that no purchase of this run made",
                grant.order_id
            ));
        }
    }
    let mut seen_orders = HashSet::new();
    for p in purchases {
        let Some(order) = p.order_id.as_deref() else {
            continue;
        };
        if !seen_orders.insert(order) {
            v.push(format!("two purchases were given order {order}"));
        }
        let granted = grants_per_order.get(order).copied().unwrap_or(0);
        let balance = ledger.balance(APP, &p.user_id, PRODUCT);
        let state = states.get(order).map_or("(missing)", String::as_str);
        let who = format!(
            "purchase {} ({:?}, {:?}, order {order})",
            p.index, p.store, p.fate
        );
        if p.owed() {
            match granted {
                0 => v.push(format!(
                    "LOST: {who} was paid and never granted (order {state})"
                )),
                1 => {}
                n => v.push(format!("DUPLICATE: {who} was granted {n} times")),
            }
            if balance != 1 {
                v.push(format!(
                    "{who}: the player holds {balance} units, 1 was paid"
                ));
            }
            if state != "CONFIRMED" {
                v.push(format!("{who}: order is {state}, not CONFIRMED"));
            }
            if let Some(why) = store_unconfirmed(p, http, emulator).await? {
                v.push(format!("{who}: {why}"));
            }
        } else if p.refunded {
            if granted > 1 {
                v.push(format!("DUPLICATE: {who} was granted {granted} times"));
            }
            if balance != 0 {
                v.push(format!(
                    "{who}: refunded, but the player still holds {balance} units"
                ));
            }
            if !matches!(state, "REFUNDED" | "REVOKED") {
                v.push(format!("{who}: refunded, but the order is {state}"));
            }
        } else {
            if granted > 0 || balance != 0 {
                v.push(format!(
                    "{who}: never paid, yet granted {granted} times (balance {balance})"
                ));
            }
            if !matches!(state, "CREATED" | "REJECTED") {
                v.push(format!("{who}: never paid, but the order is {state}"));
            }
        }
    }
    Ok(found)
}

/// For an owed purchase: was it confirmed at the store? (Google consume, Huawei confirm; Apple
/// consumables are finished by the client, so there is nothing to check.)
async fn store_unconfirmed(
    p: &Purchase,
    http: &reqwest::Client,
    emulator: &str,
) -> anyhow::Result<Option<String>> {
    let Some(token) = p.store_ref.as_deref() else {
        return Ok(Some("no store purchase recorded by the harness".into()));
    };
    let view = |store: &str| format!("{emulator}/emulator/{store}/purchases/{token}");
    Ok(match p.store {
        Store::Apple => None,
        Store::Google => {
            let held: Value = http.get(view("google")).send().await?.json().await?;
            (held["consumed"] != true).then(|| "never consumed at Google Play".to_owned())
        }
        Store::Huawei => {
            let held: Value = http.get(view("huawei")).send().await?.json().await?;
            (held["confirmed"] != true).then(|| "never confirmed at Huawei".to_owned())
        }
    })
}

async fn order_states(db: &DatabaseConnection) -> anyhow::Result<HashMap<String, String>> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT id::text AS id, state FROM orders",
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "state")?)))
        .collect()
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row: {sql}"))?;
    Ok(row.try_get("", "n")?)
}
