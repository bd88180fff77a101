//! HTTP for SREs and tools: `/metrics` (Prometheus), `/healthz`, and state queries.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::engine::{CustomerState, inquiry, reports};
use crate::metrics::Metrics;
use crate::model::CustomerKey;
use crate::pipeline::{Health, Operator, customer_state, customer_states, customers_of_owner};
use crate::state::Store;
use crate::timer::Clock;

#[derive(Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub store: Store,
    /// `/healthz` fails when the loop has not beaten for this long.
    pub max_silence: Duration,
    /// For the rule set in force (the owner directory: supervisors).
    pub operator: Operator,
    pub clock: Arc<dyn Clock>,
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
        .route(
            "/customers/{set_id}/{customer_id}/actions",
            get(action_list),
        )
        .route(
            "/customers/{set_id}/{customer_id}/actions/{action_id}",
            get(action),
        )
        .route(
            "/customers/{set_id}/{customer_id}/future-actions",
            get(future_actions),
        )
        .route(
            "/customers/{set_id}/{customer_id}/action-history",
            get(action_history),
        )
        .route("/owners/{owner}/actions", get(owner_actions))
        .route("/reports/owner-action-status", get(owner_action_status))
        .route("/reports/condition-status", get(condition_status))
        .route("/reports/disputed-items", get(disputed_items))
        .route("/conversations/search/{search}", get(conversations_search))
        .route(
            "/conversations/keyword/{keyword}",
            get(conversations_by_keyword),
        )
        .route("/promises", get(promises))
        .route(
            "/customers/{set_id}/{customer_id}/conversations",
            get(customer_conversations),
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
        Json(customer_json(&found)).into_response()
    })
}

/// The whole customer as JSON: its ledger with its actions, conversations and promises (kept
/// in records of their own, see `pipeline::customers`).
fn customer_json(state: &CustomerState) -> serde_json::Value {
    let mut json = serde_json::to_value(state).expect("customer state serializes");
    if let Some(object) = json.as_object_mut() {
        for (name, part) in [
            ("actions", serde_json::to_value(&state.actions)),
            ("conversations", serde_json::to_value(&state.conversations)),
            ("promises", serde_json::to_value(&state.promises)),
        ] {
            object.insert(name.into(), part.expect("customer state serializes"));
        }
    }
    json
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

/// A list of the customer's actions, as the action list pages show them.
fn customer_actions(
    state: &ApiState,
    set_id: String,
    customer_id: String,
    pick: fn(&CustomerState) -> Vec<&crate::engine::Action>,
) -> Response {
    let key = CustomerKey::new(set_id, customer_id);
    let rules = state.operator.rules();
    let today = state.clock.today();
    with_customer(state, key.clone(), |found| {
        let views: Vec<_> = pick(&found)
            .into_iter()
            .map(|a| reports::view(&key, &found, &rules, a, today))
            .collect();
        Json(views).into_response()
    })
}

/// The customer action list: New and Pending actions, oldest due first.
async fn action_list(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    customer_actions(&state, set_id, customer_id, reports::action_list)
}

/// Plan steps not yet on the list, and postponed actions, with the date they come.
async fn future_actions(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    customer_actions(&state, set_id, customer_id, reports::future_actions)
}

/// Every action, open and closed: complete date, cancel reason, proposed or automated,
/// delivery method, result.
async fn action_history(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    customer_actions(&state, set_id, customer_id, reports::action_history)
}

/// One action: where notifications link to.
async fn action(
    State(state): State<ApiState>,
    Path((set_id, customer_id, action_id)): Path<(String, String, String)>,
) -> Response {
    let key = CustomerKey::new(set_id, customer_id);
    let rules = state.operator.rules();
    let today = state.clock.today();
    with_customer(&state, key.clone(), |found| {
        match found.actions.get(&action_id) {
            Some(a) => Json(reports::view(&key, &found, &rules, a, today)).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                format!("customer {key} has no action {action_id}\n"),
            )
                .into_response(),
        }
    })
}

/// Every customer this instance holds (queries across customers scan them: no index yet).
fn all_customers(
    state: &ApiState,
) -> Result<Vec<(CustomerKey, CustomerState)>, crate::state::StateError> {
    let mut txn = state.store.txn();
    let mut out = Vec::new();
    for partition in state.store.partitions() {
        out.extend(customer_states(&mut txn, partition)?);
    }
    Ok(out)
}

fn internal(e: crate::state::StateError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

/// The owner action list: `?status=NEW|PENDING|FUTURE&customer=&supervisor=&specialist=
/// &country=&state=`.
async fn owner_actions(
    State(state): State<ApiState>,
    Path(owner): Path<String>,
    Query(filter): Query<reports::OwnerFilter>,
) -> Response {
    // The owner index names the customers with the owner's open actions: no full scan.
    let mut txn = state.store.txn();
    let mut customers = Vec::new();
    for partition in state.store.partitions() {
        match customers_of_owner(&mut txn, partition, &owner) {
            Ok(found) => customers.extend(found),
            Err(e) => return internal(e),
        }
    }
    let rules = state.operator.rules();
    let today = state.clock.today();
    Json(reports::owner_actions(
        &customers, &rules, &owner, &filter, today,
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct StatusRange {
    from: NaiveDate,
    to: NaiveDate,
    owner: Option<String>,
}

/// The owner action status report: `?from=YYYY-MM-DD&to=YYYY-MM-DD[&owner=]`.
async fn owner_action_status(
    State(state): State<ApiState>,
    Query(range): Query<StatusRange>,
) -> Response {
    if range.from > range.to {
        return (StatusCode::BAD_REQUEST, "`from` is after `to`\n").into_response();
    }
    match all_customers(&state) {
        Ok(customers) => Json(reports::owner_action_status(
            &customers,
            range.from,
            range.to,
            range.owner.as_deref(),
        ))
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
struct ConditionFilter {
    owner: Option<String>,
    customer: Option<String>,
}

/// The condition status by owner and customer: `?owner=&customer=`.
async fn condition_status(
    State(state): State<ApiState>,
    Query(filter): Query<ConditionFilter>,
) -> Response {
    match all_customers(&state) {
        Ok(customers) => Json(reports::condition_status(
            &customers,
            filter.owner.as_deref(),
            filter.customer.as_deref(),
        ))
        .into_response(),
        Err(e) => internal(e),
    }
}

/// A customer's conversations, the state of each promise, its call disputes and exclusions.
async fn customer_conversations(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    with_customer(&state, CustomerKey::new(set_id, customer_id), |found| {
        Json(serde_json::json!({
            "conversations": found.conversations,
            "promises": found.promises,
            "disputes": found.disputes,
            "dunning": found.dunning,
        }))
        .into_response()
    })
}

/// The conversation searches: `follow-ups`, `review-needed`, `promise-review-needed`,
/// `broken-promise-review-needed`, `supervisor-review-needed`.
async fn conversations_search(
    State(state): State<ApiState>,
    Path(search): Path<String>,
) -> Response {
    let Ok(search) = serde_json::from_value::<inquiry::Search>(serde_json::json!(search)) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no search `{search}`: follow-ups, review-needed, promise-review-needed, broken-promise-review-needed, supervisor-review-needed\n"),
        )
            .into_response();
    };
    let customers = match all_customers(&state) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let rules = state.operator.rules();
    Json(inquiry::search(
        &customers,
        &rules,
        search,
        state.clock.today(),
    ))
    .into_response()
}

async fn conversations_by_keyword(
    State(state): State<ApiState>,
    Path(keyword): Path<String>,
) -> Response {
    let customers = match all_customers(&state) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let rules = state.operator.rules();
    Json(inquiry::by_keyword(
        &customers,
        &rules,
        &keyword,
        state.clock.today(),
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct PromiseQuery {
    group_by: Option<inquiry::GroupBy>,
}

/// The promise inquiry: every promise, or `?group_by=customer|business-unit|collector|supervisor`
/// with counts and amounts of broken, kept and open promises.
async fn promises(State(state): State<ApiState>, Query(query): Query<PromiseQuery>) -> Response {
    let customers = match all_customers(&state) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let rules = state.operator.rules();
    let rows = inquiry::promises(&customers, &rules, state.clock.today());
    match query.group_by {
        Some(by) => Json(inquiry::grouped(&rows, by)).into_response(),
        None => Json(rows).into_response(),
    }
}

/// The disputed-invoice report: open items with an amount in dispute, by a call or the ERP.
async fn disputed_items(State(state): State<ApiState>) -> Response {
    match all_customers(&state) {
        Ok(customers) => Json(inquiry::disputed_items(&customers)).into_response(),
        Err(e) => internal(e),
    }
}

fn with_customer(
    state: &ApiState,
    key: CustomerKey,
    respond: impl FnOnce(crate::engine::CustomerState) -> Response,
) -> Response {
    let mut txn = state.store.txn();
    for partition in state.store.partitions() {
        match customer_state(&mut txn, partition, &key) {
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
