//! Control API shared by every store: faults and request counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::faults::Fault;
use crate::lock::lock;
use crate::state::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/faults",
            post(add_fault).delete(clear_faults).get(list_faults),
        )
        .route("/stats", get(stats))
}

async fn add_fault(
    State(shared): State<Arc<Shared>>,
    Json(fault): Json<Fault>,
) -> Json<Vec<Fault>> {
    let mut faults = lock(&shared.faults);
    faults.push(fault);
    Json(faults.clone())
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Json<Vec<Fault>> {
    lock(&shared.faults).clear();
    Json(Vec::new())
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Json<Vec<Fault>> {
    Json(lock(&shared.faults).clone())
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    Json(lock(&shared.stats).clone())
}
