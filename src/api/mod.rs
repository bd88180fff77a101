//! HTTP for SREs and tools: `/metrics` (Prometheus), `/healthz`, and state queries.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::model::CustomerKey;
use crate::pipeline::{Health, customer_state};
use crate::state::Store;

#[derive(Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub store: Store,
    /// `/healthz` fails when the loop has not beaten for this long.
    pub max_silence: Duration,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/customers/{set_id}/{customer_id}", get(customer))
        .route(
            "/customers/{set_id}/{customer_id}/violations",
            get(violations),
        )
        .route(
            "/customers/{set_id}/{customer_id}/risk-score",
            get(risk_score),
        )
        .with_state(state)
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<ApiState>) -> Response {
    if state.health.is_healthy(state.max_silence) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the processing loop is not running\n",
        )
            .into_response()
    }
}

/// A customer's ledger, violations and actions, from whichever local partition holds it.
async fn customer(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    with_customer(&state, CustomerKey::new(set_id, customer_id), |found| {
        Json(found).into_response()
    })
}

/// The customer's active violations (by slot) and the rules it is flagged for: those that
/// cannot be evaluated now, with why.
async fn violations(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    with_customer(&state, CustomerKey::new(set_id, customer_id), |found| {
        Json(serde_json::json!({
            "violations": found.violations,
            "blocked": found.blocked,
        }))
        .into_response()
    })
}

/// The customer's risk score as last computed, element by element.
async fn risk_score(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    with_customer(
        &state,
        CustomerKey::new(set_id, customer_id),
        |found| match found.risk {
            Some(score) => Json(score).into_response(),
            None => (StatusCode::NOT_FOUND, "the customer has no scoring rule\n").into_response(),
        },
    )
}

fn with_customer(
    state: &ApiState,
    key: CustomerKey,
    respond: impl FnOnce(crate::engine::CustomerState) -> Response,
) -> Response {
    let txn = state.store.txn();
    for partition in state.store.partitions() {
        match customer_state(&txn, partition, &key) {
            Ok(Some(found)) => return respond(found),
            Ok(None) => {}
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    (
        StatusCode::NOT_FOUND,
        format!("customer {key} is not held by this instance\n"),
    )
        .into_response()
}

/// Serves the router on `listen` until the process ends.
pub async fn serve(listen: &str, state: ApiState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen, "HTTP listening.");
    axum::serve(listener, router(state)).await
}
