//! HTTP for SREs and tools: `/metrics` (Prometheus), `/healthz`, `/readyz`, and state
//! queries.
//!
//! Any instance answers any query: a customer's is answered by the instance holding its
//! partition (forwarded there if need be, see [`directory`]); a query across customers is
//! answered over the partitions this instance holds and those of every other instance, asked
//! in turn, and merged. An instance answers only for partitions it holds and is up to date
//! on; if a partition has no holder at the moment (it is moving), the answer is 503, never a
//! partial list.

pub mod conventions;
pub mod directory;
mod openapi;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::Value;

pub use directory::Directory;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::engine::{CustomerState, inquiry, reports};
use crate::metrics::Metrics;
use crate::model::{CustomerKey, MonitorRole};
use crate::pipeline::{
    Health, Operator, ProbeLimits, customer_state, customer_states, customers_of_owner,
    customers_related,
};
use crate::state::Store;
use crate::timer::Clock;
use openapi::{
    CustomerPath, Errors, FamilyLevel, GroupBy, Level, ListStatus, LookupErrors, Page, ProbeErrors,
    Search,
};

#[derive(Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub store: Store,
    /// What `/livez`, `/healthz` and `/readyz` compare with.
    pub probes: ProbeLimits,
    /// For the rule set in force (the owner directory: supervisors).
    pub operator: Operator,
    pub clock: Arc<dyn Clock>,
    /// Who holds which partition (this instance included) and where it answers.
    pub directory: Directory,
    /// The partition count of the inputs (a customer's partition is murmur2 of its key).
    pub partitions: i32,
    /// This instance's own address in the directory (requests to it are not forwarded).
    pub me: String,
    pub peers: Peers,
    /// The bearer token customer data asks for (and that this instance gives its peers).
    pub token: Option<Arc<str>>,
}

/// The HTTP client that asks other instances.
#[derive(Clone)]
pub struct Peers {
    agent: ureq::Agent,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }
}

/// Marks a request one instance forwarded to another: it is answered there, never forwarded
/// again.
const FORWARDED: &str = "x-condmon-forwarded";
/// On a forwarded query across customers: the partitions the answer covers.
const ANSWERED: &str = "x-condmon-partitions";

impl Peers {
    /// GET `path_and_query` of the instance at `http`: (status, content type, headers wanted,
    /// body).
    async fn get(
        &self,
        http: &str,
        path_and_query: &str,
        token: Option<Arc<str>>,
    ) -> Result<(u16, String, Option<String>, Vec<u8>), String> {
        let url = format!("http://{http}{path_and_query}");
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || {
            let mut request = agent.get(&url).header(FORWARDED, "1");
            if let Some(token) = &token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let mut response = request.call().map_err(|e| format!("{url}: {e}"))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let content_type = header("content-type").unwrap_or_else(|| "text/plain".into());
            let answered = header(ANSWERED);
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .read_to_vec()
                .map_err(|e| format!("{url}: {e}"))?;
            Ok((status, content_type, answered, body))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Everything on one router (one address for operations and customer data).
pub fn router(state: ApiState) -> Router {
    operations_router(state.clone()).merge(data_router(state, false))
}

/// Operations: metrics, probes and the API's description; no customer data.
pub fn operations_router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .layer(axum::middleware::from_fn(conventions::problems))
        .with_state(state)
}

/// Customer data: customers, action lists, reports, conversations; behind the bearer token
/// when one is configured. With `described`, `/openapi.json` too (on its own address).
pub fn data_router(state: ApiState, described: bool) -> Router {
    let customers = Router::new()
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
        .route(
            "/customers/{set_id}/{customer_id}/conversations",
            get(customer_conversations),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            to_holder,
        ));
    let router = if described {
        Router::new().route("/openapi.json", get(openapi_json))
    } else {
        Router::new()
    };
    router
        .merge(customers)
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
            "/relations/{set_id}/{parent}/{level}/actions",
            get(family_actions),
        )
        .layer(axum::middleware::from_fn(conventions::pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bearer_token,
        ))
        .layer(axum::middleware::from_fn(conventions::problems))
        .with_state(state)
}

/// Asks every request for customer data for the configured bearer token (401 without it).
async fn bearer_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    // The description of the API is not customer data.
    if request.uri().path() == "/openapi.json" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = conventions::problem(
        StatusCode::UNAUTHORIZED,
        "customer data needs the API's bearer token (`Authorization: Bearer …`)",
        request.uri().path(),
    );
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Equal bytes, compared in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends a customer's query to the instance holding its partition, unless it is this one.
async fn to_holder(
    State(state): State<ApiState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let key = CustomerKey::new(
        params.get("set_id").cloned().unwrap_or_default(),
        params.get("customer_id").cloned().unwrap_or_default(),
    );
    let partition = crate::kafka::partition_for(key.encode().as_bytes(), state.partitions);
    if state.health.held().contains(&partition) {
        return next.run(request).await;
    }
    let holder = state
        .directory
        .holder(partition)
        .filter(|h| h.http != state.me);
    match holder {
        Some(holder) if !request.headers().contains_key(FORWARDED) => {
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            match state
                .peers
                .get(&holder.http, &path, state.token.clone())
                .await
            {
                Ok((status, content_type, _, body)) => (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    [("content-type", content_type)],
                    body,
                )
                    .into_response(),
                Err(e) => unavailable(format!(
                    "partition {partition} is held by {} ({}), which did not answer: {e}",
                    holder.owner, holder.http
                )),
            }
        }
        _ => unavailable(format!(
            "partition {partition} (customer {key}) has no holder at the moment (it is moving \
             between instances): try again"
        )),
    }
}

fn unavailable(message: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response()
}

/// A query across customers: answered by `local` over the partitions this instance holds and,
/// unless it was forwarded here, by every other holder over its own, merged with `merge`.
/// Every partition is answered for exactly once, or the answer is 503.
async fn across(
    state: &ApiState,
    uri: &Uri,
    headers: &HeaderMap,
    local: impl FnOnce(&[i32]) -> Result<Value, Response>,
    merge: fn(Vec<Value>) -> Value,
) -> Response {
    let held: BTreeSet<i32> = state.health.held().into_iter().collect();
    if headers.contains_key(FORWARDED) {
        // Asked by another instance: the partitions it asked for that this one holds.
        let asked: BTreeSet<i32> = uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.strip_prefix("partitions="))
            .flat_map(|list| list.split(','))
            .filter_map(|p| p.parse().ok())
            .collect();
        let mine: Vec<i32> = held.intersection(&asked).copied().collect();
        return match local(&mine) {
            Ok(value) => ([(ANSWERED, join(&mine))], Json(value)).into_response(),
            Err(response) => response,
        };
    }
    let mine: Vec<i32> = held.iter().copied().collect();
    let mut others: BTreeMap<String, (String, Vec<i32>)> = BTreeMap::new();
    for partition in (0..state.partitions).filter(|p| !held.contains(p)) {
        match state
            .directory
            .holder(partition)
            .filter(|h| h.http != state.me)
        {
            Some(holder) => others
                .entry(holder.http)
                .or_insert_with(|| (holder.owner, Vec::new()))
                .1
                .push(partition),
            None => {
                return unavailable(format!(
                    "partition {partition} has no holder at the moment (it is moving between \
                     instances): try again"
                ));
            }
        }
    }
    let mut parts = vec![match local(&mine) {
        Ok(value) => value,
        Err(response) => return response,
    }];
    for (http, (owner, partitions)) in others {
        let separator = if uri.query().is_some() { '&' } else { '?' };
        let path = format!(
            "{}{separator}partitions={}",
            uri.path_and_query().map_or("/", |p| p.as_str()),
            join(&partitions)
        );
        let answer = state.peers.get(&http, &path, state.token.clone()).await;
        let complete = |answered: &Option<String>| {
            let answered: BTreeSet<&str> = answered.as_deref().unwrap_or("").split(',').collect();
            partitions
                .iter()
                .all(|p| answered.contains(p.to_string().as_str()))
        };
        match answer {
            Ok((200, _, answered, body)) if complete(&answered) => {
                match serde_json::from_slice(&body) {
                    Ok(value) => parts.push(value),
                    Err(e) => return unavailable(format!("{owner} ({http}): {e}")),
                }
            }
            Ok((status, _, answered, body)) => {
                return unavailable(format!(
                    "{owner} ({http}) answered {status} for partitions {:?} of {}: {}",
                    answered,
                    join(&partitions),
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            Err(e) => return unavailable(format!("{owner} ({http}) did not answer: {e}")),
        }
    }
    Json(merge(parts)).into_response()
}

fn join(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Rows of several instances, in the order `key` gives (the order one instance gives them).
fn rows_by(parts: Vec<Value>, key: &[&str]) -> Value {
    let mut rows: Vec<Value> = parts
        .into_iter()
        .flat_map(|p| match p {
            Value::Array(rows) => rows,
            other => vec![other],
        })
        .collect();
    let field = |row: &Value, name: &str| -> String {
        match name.split_once('.') {
            Some((outer, inner)) => row[outer][inner].to_string(),
            None => row[name].to_string(),
        }
    };
    rows.sort_by(|a, b| {
        key.iter()
            .map(|k| field(a, k))
            .cmp(key.iter().map(|k| field(b, k)))
    });
    Value::Array(rows)
}

/// Rows that count things per group, of several instances: the same groups added up.
fn sums_by(parts: Vec<Value>, group: &[&str]) -> Value {
    let mut groups: BTreeMap<Vec<String>, serde_json::Map<String, Value>> = BTreeMap::new();
    for row in parts.into_iter().flat_map(|p| match p {
        Value::Array(rows) => rows,
        other => vec![other],
    }) {
        let Value::Object(row) = row else { continue };
        let key: Vec<String> = group.iter().map(|g| row[*g].to_string()).collect();
        match groups.get_mut(&key) {
            None => {
                groups.insert(key, row);
            }
            Some(sum) => {
                for (name, value) in row {
                    if group.contains(&name.as_str()) {
                        continue;
                    }
                    let added = add(&sum[&name], &value);
                    sum.insert(name, added);
                }
            }
        }
    }
    Value::Array(groups.into_values().map(Value::Object).collect())
}

/// Two counts or two amounts (decimal strings) added up exactly.
fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            Value::from(x.as_u64().unwrap_or(0) + y.as_u64().unwrap_or(0))
        }
        (Value::String(x), Value::String(y)) => {
            match (
                x.parse::<rust_decimal::Decimal>(),
                y.parse::<rust_decimal::Decimal>(),
            ) {
                (Ok(x), Ok(y)) => Value::String((x + y).to_string()),
                _ => a.clone(),
            }
        }
        _ => a.clone(),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "The text exposition format", body = String, content_type = "text/plain"), Errors)
)]
async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Live: the loop is not wedged (a broker or registry being retried is life). `/healthz` is
/// the same probe, kept for what already polls it.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "operations",
    summary = "Liveness: the processing loop is not wedged",
    responses((status = 200, description = "Live", body = String, content_type = "text/plain"), ProbeErrors)
)]
async fn livez(State(state): State<ApiState>) -> Response {
    probe(
        state.health.is_live(state.probes),
        "ok",
        "the processing loop has shown no sign of life within pipeline.liveness_timeout_ms",
    )
}

/// 200 once the instance holds partitions restored, claimed and caught up to within
/// `pipeline.ready_max_lag`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: partitions held, restored, claimed and caught up",
    responses((status = 200, description = "Ready", body = String, content_type = "text/plain"), ProbeErrors)
)]
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.health.readiness(state.probes) {
        Ok(()) => probe(true, "ready", ""),
        Err(why) => probe(false, "", why),
    }
}

/// Liveness under its older name.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness (the same probe as /livez)",
    responses((status = 200, description = "Live", body = String, content_type = "text/plain"), ProbeErrors)
)]
async fn healthz(state: State<ApiState>) -> Response {
    livez(state).await
}

/// This API, described (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This API, described",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi_json() -> Response {
    Json(openapi::document()).into_response()
}

fn probe(ok: bool, yes: &str, no: &str) -> Response {
    match ok {
        true => (StatusCode::OK, format!("{yes}\n")).into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, format!("{no}\n")).into_response(),
    }
}

/// A customer's ledger, violations and actions, from whichever local partition holds it.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}",
    tag = "customers",
    summary = "A customer's ledger, figures, violations, actions, conversations and promises",
    params(CustomerPath),
    responses((status = 200, description = "The answer", body = Object), LookupErrors)
)]
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

/// The customer's active violations (by slot), the rules it is flagged for (those that cannot
/// be evaluated now, with why) and the violations of scheduled rules waiting for a run day.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/violations",
    tag = "customers",
    summary = "A customer's active violations, the rules it is flagged for and the violations waiting for a run day",
    params(CustomerPath),
    responses((status = 200, description = "The answer", body = Object), LookupErrors)
)]
async fn violations(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
) -> Response {
    with_customer(&state, CustomerKey::new(set_id, customer_id), |found| {
        Json(serde_json::json!({
            "violations": found.violations,
            "blocked": found.blocked,
            "waiting": found.waiting,
        }))
        .into_response()
    })
}

/// The customer's risk score as last computed, element by element.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/risk-score",
    tag = "customers",
    summary = "A customer's risk score, element by element",
    params(CustomerPath),
    responses((status = 200, description = "The answer", body = Object), LookupErrors)
)]
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

/// A list of the customer's actions, as the action list pages show them, with the amounts in
/// the display currency when one is asked for.
fn customer_actions(
    state: &ApiState,
    set_id: String,
    customer_id: String,
    pick: fn(&CustomerState) -> Vec<&crate::engine::Action>,
    with_history: bool,
    display: &reports::DisplayCurrency,
) -> Response {
    if let Err(problem) = display.currency() {
        return bad_request(problem);
    }
    let key = CustomerKey::new(set_id, customer_id);
    let rules = state.operator.rules();
    let today = state.clock.today();
    with_customer_and_history(state, key.clone(), with_history, |found| {
        let mut views: Vec<_> = pick(&found)
            .into_iter()
            .map(|a| reports::view(&key, &found, &rules, a, today))
            .collect();
        state
            .operator
            .with_fx(|fx| display.apply(fx, &mut views, today));
        Json(views).into_response()
    })
}

fn bad_request(problem: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response()
}

/// The customer action list: New and Pending actions, oldest due first; with `level=C|P|R`
/// those of the customers related to it at that level too (the Customer Action page's Level:
/// corporate, correspondence, remit from; N, the default, none).
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/actions",
    tag = "actions",
    summary = "The customer action list (New and Pending actions), with the related customers' at a level",
    params(CustomerPath, ("level" = Option<Level>, Query, description = "C (corporate), P (correspondence), R (remit from) or N (none, the default)"), ("display_currency" = Option<String>, Query, description = "Show amounts in this ISO 4217 currency"), ("rate_type" = Option<String>, Query, description = "Rate type of the conversion (default CRRNT)"), ("effective_date" = Option<chrono::NaiveDate>, Query, description = "Rates in force on this date (default the business date)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), LookupErrors)
)]
async fn action_list(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
    Query(display): Query<reports::DisplayCurrency>,
    Query(level): Query<LevelQuery>,
    uri: Uri,
) -> Response {
    let role = match level.role() {
        Ok(role) => role,
        Err(problem) => return bad_request(problem),
    };
    let Some(role) = role else {
        return customer_actions(
            &state,
            set_id,
            customer_id,
            reports::action_list,
            false,
            &display,
        );
    };
    if let Err(problem) = display.currency() {
        return bad_request(problem);
    }
    // The customer is held here (see `to_holder`): its master names the family's head.
    let key = CustomerKey::new(set_id, customer_id);
    let head = {
        let partition = crate::kafka::partition_for(key.encode().as_bytes(), state.partitions);
        match customer_state(&mut state.store.txn(), partition, &key) {
            Ok(Some(found)) => crate::engine::family_head(&found, &key, role),
            Ok(None) => {
                return (StatusCode::NOT_FOUND, format!("no customer {key}\n")).into_response();
            }
            Err(e) => return internal(e),
        }
    };
    let segment = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let path = format!(
        "/relations/{}/{}/{}/actions{}",
        segment(&head.set_id),
        segment(&head.customer_id),
        level.level.as_deref().unwrap_or("N"),
        uri.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let Ok(family_uri) = path.parse::<Uri>() else {
        return bad_request(format!("{path} is not a path"));
    };
    related_actions(&state, head, role, &display, &family_uri, &HeaderMap::new()).await
}

/// `level=` of the customer action list.
#[derive(Debug, Deserialize)]
struct LevelQuery {
    level: Option<String>,
}

impl LevelQuery {
    fn role(&self) -> Result<Option<MonitorRole>, String> {
        match self.level.as_deref() {
            None | Some("N") => Ok(None),
            Some("C") => Ok(Some(MonitorRole::Corporate)),
            Some("P") => Ok(Some(MonitorRole::Correspondence)),
            Some("R") => Ok(Some(MonitorRole::RemitFrom)),
            Some(other) => Err(format!(
                "level {other:?} is none of C (corporate), P (correspondence), R (remit from), N (none)"
            )),
        }
    }
}

/// The action list of a family: the New and Pending actions of `head` and of the customers
/// whose master names it as their parent at `role`, from every partition (this instance's and
/// the other instances'), oldest due first; each row names its customer.
async fn related_actions(
    state: &ApiState,
    head: CustomerKey,
    role: MonitorRole,
    display: &reports::DisplayCurrency,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let local = |partitions: &[i32]| {
        let mut txn = state.store.txn();
        let mut customers = Vec::new();
        for partition in partitions {
            customers.extend(
                customers_related(&mut txn, *partition, state.partitions, role, &head)
                    .map_err(internal)?,
            );
        }
        let rules = state.operator.rules();
        let today = state.clock.today();
        let mut views: Vec<_> = customers
            .iter()
            .flat_map(|(key, found)| {
                reports::action_list(found)
                    .into_iter()
                    .map(|a| reports::view(key, found, &rules, a, today))
            })
            .collect();
        state
            .operator
            .with_fx(|fx| display.apply(fx, &mut views, today));
        Ok(json(views))
    };
    across(state, uri, headers, local, |parts| {
        rows_by(parts, &["due_date", "customer_id", "id"])
    })
    .await
}

/// `/relations/{set}/{parent}/{level}/actions`: a family's action list (see [`action_list`]),
/// also what instances ask each other for it.
#[utoipa::path(
    get,
    path = "/relations/{set_id}/{parent}/{level}/actions",
    tag = "actions",
    summary = "The action list of a parent's family at a level",
    params(("set_id" = String, Path, description = "The setID", example = "SHARE"), ("parent" = String, Path, description = "The parent customer", example = "ACME"), ("level" = FamilyLevel, Path, description = "C, P or R"), ("display_currency" = Option<String>, Query, description = "Show amounts in this ISO 4217 currency"), ("rate_type" = Option<String>, Query, description = "Rate type of the conversion (default CRRNT)"), ("effective_date" = Option<chrono::NaiveDate>, Query, description = "Rates in force on this date (default the business date)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn family_actions(
    State(state): State<ApiState>,
    Path((set_id, parent, level)): Path<(String, String, String)>,
    Query(display): Query<reports::DisplayCurrency>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let role = match (LevelQuery { level: Some(level) }).role() {
        Ok(Some(role)) => role,
        Ok(None) => return bad_request("a family needs a level: C, P or R".into()),
        Err(problem) => return bad_request(problem),
    };
    if let Err(problem) = display.currency() {
        return bad_request(problem);
    }
    let head = CustomerKey::new(set_id, parent);
    related_actions(&state, head, role, &display, &uri, &headers).await
}

/// Plan steps not yet on the list, and postponed actions, with the date they come.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/future-actions",
    tag = "actions",
    summary = "Plan steps not yet on the list and postponed actions",
    params(CustomerPath, ("display_currency" = Option<String>, Query, description = "Show amounts in this ISO 4217 currency"), ("rate_type" = Option<String>, Query, description = "Rate type of the conversion (default CRRNT)"), ("effective_date" = Option<chrono::NaiveDate>, Query, description = "Rates in force on this date (default the business date)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), LookupErrors)
)]
async fn future_actions(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
    Query(display): Query<reports::DisplayCurrency>,
) -> Response {
    customer_actions(
        &state,
        set_id,
        customer_id,
        reports::future_actions,
        false,
        &display,
    )
}

/// Every action, open and closed: complete date, cancel reason, proposed or automated,
/// delivery method, result.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/action-history",
    tag = "actions",
    summary = "Every action of the customer, open and closed",
    params(CustomerPath, ("display_currency" = Option<String>, Query, description = "Show amounts in this ISO 4217 currency"), ("rate_type" = Option<String>, Query, description = "Rate type of the conversion (default CRRNT)"), ("effective_date" = Option<chrono::NaiveDate>, Query, description = "Rates in force on this date (default the business date)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), LookupErrors)
)]
async fn action_history(
    State(state): State<ApiState>,
    Path((set_id, customer_id)): Path<(String, String)>,
    Query(display): Query<reports::DisplayCurrency>,
) -> Response {
    // The history shows the actions that left the hot state too.
    customer_actions(
        &state,
        set_id,
        customer_id,
        reports::action_history,
        true,
        &display,
    )
}

/// One action: where notifications link to.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/actions/{action_id}",
    tag = "actions",
    summary = "One action (where notifications link)",
    params(CustomerPath, ("action_id" = String, Path, description = "The action", example = "COLL-30-1-1")),
    responses((status = 200, description = "The answer", body = Object), LookupErrors)
)]
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

/// Every customer of `partitions` (queries across customers scan them: no index yet).
fn customers_of(
    state: &ApiState,
    partitions: &[i32],
) -> Result<Vec<(CustomerKey, CustomerState)>, Response> {
    let mut txn = state.store.txn();
    let mut out = Vec::new();
    for partition in partitions {
        out.extend(customer_states(&mut txn, *partition).map_err(internal)?);
    }
    Ok(out)
}

fn internal(e: crate::state::StateError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

fn json(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("query answers serialize")
}

/// The owner action list: `?status=NEW|PENDING|FUTURE&customer=&supervisor=&specialist=
/// &country=&state=`, and the display currency (`&display_currency=&rate_type=
/// &effective_date=`).
#[utoipa::path(
    get,
    path = "/owners/{owner}/actions",
    tag = "actions",
    summary = "The owner action list across customers",
    params(("owner" = String, Path, description = "The owner's user id", example = "JDOE"), ("status" = Option<ListStatus>, Query, description = "NEW, PENDING or FUTURE (default all three)"), ("customer" = Option<String>, Query), ("supervisor" = Option<String>, Query), ("specialist" = Option<String>, Query), ("country" = Option<String>, Query), ("state" = Option<String>, Query), ("display_currency" = Option<String>, Query, description = "Show amounts in this ISO 4217 currency"), ("rate_type" = Option<String>, Query, description = "Rate type of the conversion (default CRRNT)"), ("effective_date" = Option<chrono::NaiveDate>, Query, description = "Rates in force on this date (default the business date)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn owner_actions(
    State(state): State<ApiState>,
    Path(owner): Path<String>,
    Query(filter): Query<reports::OwnerFilter>,
    Query(display): Query<reports::DisplayCurrency>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(problem) = display.currency() {
        return bad_request(problem);
    }
    let local = |partitions: &[i32]| {
        // The owner index names the customers with the owner's open actions: no full scan.
        let mut txn = state.store.txn();
        let mut customers = Vec::new();
        for partition in partitions {
            customers.extend(customers_of_owner(&mut txn, *partition, &owner).map_err(internal)?);
        }
        let rules = state.operator.rules();
        let today = state.clock.today();
        let mut views = reports::owner_actions(&customers, &rules, &owner, &filter, today);
        state
            .operator
            .with_fx(|fx| display.apply(fx, &mut views, today));
        Ok(json(views))
    };
    across(&state, &uri, &headers, local, |parts| {
        rows_by(parts, &["due_date", "customer_id", "id"])
    })
    .await
}

#[derive(Debug, Deserialize)]
struct StatusRange {
    from: NaiveDate,
    to: NaiveDate,
    owner: Option<String>,
}

/// The owner action status report: `?from=YYYY-MM-DD&to=YYYY-MM-DD[&owner=]`.
#[utoipa::path(
    get,
    path = "/reports/owner-action-status",
    tag = "reports",
    summary = "Per owner and day: actions added to the list, completed, cancelled",
    params(("from" = chrono::NaiveDate, Query, description = "First day"), ("to" = chrono::NaiveDate, Query, description = "Last day"), ("owner" = Option<String>, Query), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn owner_action_status(
    State(state): State<ApiState>,
    Query(range): Query<StatusRange>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if range.from > range.to {
        return (StatusCode::BAD_REQUEST, "`from` is after `to`\n").into_response();
    }
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        Ok(json(reports::owner_action_status(
            &customers,
            range.from,
            range.to,
            range.owner.as_deref(),
        )))
    };
    across(&state, &uri, &headers, local, |parts| {
        sums_by(parts, &["owner", "date"])
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ConditionFilter {
    owner: Option<String>,
    customer: Option<String>,
}

/// The condition status by owner and customer: `?owner=&customer=`.
#[utoipa::path(
    get,
    path = "/reports/condition-status",
    tag = "reports",
    summary = "Each active violation with the owner's open actions on it",
    params(("owner" = Option<String>, Query), ("customer" = Option<String>, Query), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn condition_status(
    State(state): State<ApiState>,
    Query(filter): Query<ConditionFilter>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        Ok(json(reports::condition_status(
            &customers,
            filter.owner.as_deref(),
            filter.customer.as_deref(),
        )))
    };
    across(&state, &uri, &headers, local, |parts| {
        rows_by(parts, &["owner", "set_id", "customer_id", "violation_id"])
    })
    .await
}

/// A customer's conversations, the state of each promise, its call disputes and exclusions.
#[utoipa::path(
    get,
    path = "/customers/{set_id}/{customer_id}/conversations",
    tag = "conversations",
    summary = "A customer's conversations, promises, call disputes and exclusions",
    params(CustomerPath),
    responses((status = 200, description = "The answer", body = Object), LookupErrors)
)]
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
#[utoipa::path(
    get,
    path = "/conversations/search/{search}",
    tag = "conversations",
    summary = "A conversation search",
    params(("search" = Search, Path, description = "Which search"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), LookupErrors)
)]
async fn conversations_search(
    State(state): State<ApiState>,
    Path(search): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(search) = serde_json::from_value::<inquiry::Search>(serde_json::json!(search)) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no search `{search}`: follow-ups, review-needed, promise-review-needed, broken-promise-review-needed, supervisor-review-needed\n"),
        )
            .into_response();
    };
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        let rules = state.operator.rules();
        Ok(json(inquiry::search(
            &customers,
            &rules,
            search,
            state.clock.today(),
        )))
    };
    across(&state, &uri, &headers, local, by_customer).await
}

/// Rows of several instances by customer (each instance's rows of a customer keep their
/// order).
fn by_customer(parts: Vec<Value>) -> Value {
    rows_by(parts, &["set_id", "customer_id"])
}

#[utoipa::path(
    get,
    path = "/conversations/keyword/{keyword}",
    tag = "conversations",
    summary = "Conversations by keyword",
    params(("keyword" = String, Path), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn conversations_by_keyword(
    State(state): State<ApiState>,
    Path(keyword): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        let rules = state.operator.rules();
        Ok(json(inquiry::by_keyword(
            &customers,
            &rules,
            &keyword,
            state.clock.today(),
        )))
    };
    across(&state, &uri, &headers, local, by_customer).await
}

#[derive(Debug, Deserialize)]
struct PromiseQuery {
    group_by: Option<inquiry::GroupBy>,
}

/// The promise inquiry: every promise, or `?group_by=customer|business-unit|collector|supervisor`
/// with counts and amounts of broken, kept and open promises.
#[utoipa::path(
    get,
    path = "/promises",
    tag = "conversations",
    summary = "The promise inquiry, or promises grouped with counts and amounts",
    params(("group_by" = Option<GroupBy>, Query, description = "Group the promises (default: every promise)"), Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn promises(
    State(state): State<ApiState>,
    Query(query): Query<PromiseQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        let rules = state.operator.rules();
        let rows = inquiry::promises(&customers, &rules, state.clock.today());
        Ok(match query.group_by {
            Some(by) => json(inquiry::grouped(&rows, by)),
            None => json(rows),
        })
    };
    let merge = if query.group_by.is_some() {
        |parts| sums_by(parts, &["group", "currency"])
    } else {
        by_customer
    };
    across(&state, &uri, &headers, local, merge).await
}

/// The disputed-invoice report: open items with an amount in dispute, by a call or the ERP.
#[utoipa::path(
    get,
    path = "/reports/disputed-items",
    tag = "reports",
    summary = "Open items with an amount in dispute",
    params(Page),
    responses((status = 200, description = "The rows of the page; `X-Total-Count` has the whole list's length, `Link` the next page", body = Vec<Object>), Errors)
)]
async fn disputed_items(State(state): State<ApiState>, uri: Uri, headers: HeaderMap) -> Response {
    let local = |partitions: &[i32]| {
        let customers = customers_of(&state, partitions)?;
        Ok(json(inquiry::disputed_items(&customers)))
    };
    across(&state, &uri, &headers, local, by_customer).await
}

/// Answers from the customer's state (its partition is held here: see `to_holder`).
fn with_customer(
    state: &ApiState,
    key: CustomerKey,
    respond: impl FnOnce(crate::engine::CustomerState) -> Response,
) -> Response {
    with_customer_and_history(state, key, false, respond)
}

/// The same, with the actions that left the hot state put back among the customer's actions
/// (`with_history`).
fn with_customer_and_history(
    state: &ApiState,
    key: CustomerKey,
    with_history: bool,
    respond: impl FnOnce(crate::engine::CustomerState) -> Response,
) -> Response {
    let partition = crate::kafka::partition_for(key.encode().as_bytes(), state.partitions);
    let mut txn = state.store.txn();
    let found = customer_state(&mut txn, partition, &key).and_then(|found| {
        let Some(mut found) = found else {
            return Ok(None);
        };
        if with_history {
            for action in crate::pipeline::customers::history_actions(&mut txn, partition, &key)? {
                found.actions.insert(action.id.clone(), action);
            }
        }
        Ok(Some(found))
    });
    match found {
        Ok(Some(found)) => respond(found),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no customer {key}\n")).into_response(),
        Err(e) => internal(e),
    }
}

/// Serves operations on `operations` and customer data on `data` (one server when they are
/// the same address) until the process ends.
pub async fn serve(operations: &str, data: &str, state: ApiState) -> std::io::Result<()> {
    if operations == data {
        let listener = tokio::net::TcpListener::bind(operations).await?;
        tracing::info!(
            listen = operations,
            "HTTP (operations and customer data) listening."
        );
        return axum::serve(listener, router(state)).await;
    }
    let ops = tokio::net::TcpListener::bind(operations).await?;
    let api = tokio::net::TcpListener::bind(data).await?;
    tracing::info!(
        operations,
        data,
        "HTTP listening (operations; customer data)."
    );
    let ops = axum::serve(ops, operations_router(state.clone()));
    let api = axum::serve(api, data_router(state, true));
    tokio::try_join!(async { ops.await }, async { api.await }).map(|_| ())
}
