//! The HTTP API described for its clients: an OpenAPI 3.1 document generated from the
//! handlers' annotations, served at `/openapi.json`.

// The enums here only describe parameters and answers to utoipa: nothing builds them.
#![allow(dead_code)]

use utoipa::OpenApi;

use super::conventions::Problem;

/// The customer action list's levels (the Customer Action page's Level).
#[derive(utoipa::ToSchema)]
pub enum Level {
    C,
    P,
    R,
    N,
}

/// The levels a family has (corporate, correspondence, remit from).
#[derive(utoipa::ToSchema)]
pub enum FamilyLevel {
    C,
    P,
    R,
}

/// The statuses of the owner action list.
#[derive(utoipa::ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum ListStatus {
    NEW,
    PENDING,
    FUTURE,
}

/// The conversation searches.
#[derive(utoipa::ToSchema)]
pub enum Search {
    #[schema(rename = "follow-ups")]
    FollowUps,
    #[schema(rename = "review-needed")]
    ReviewNeeded,
    #[schema(rename = "promise-review-needed")]
    PromiseReviewNeeded,
    #[schema(rename = "broken-promise-review-needed")]
    BrokenPromiseReviewNeeded,
    #[schema(rename = "supervisor-review-needed")]
    SupervisorReviewNeeded,
}

/// How the promise inquiry groups.
#[derive(utoipa::ToSchema)]
pub enum GroupBy {
    #[schema(rename = "customer")]
    Customer,
    #[schema(rename = "business-unit")]
    BusinessUnit,
    #[schema(rename = "collector")]
    Collector,
    #[schema(rename = "supervisor")]
    Supervisor,
}

/// The errors every route may answer (as problem details).
#[derive(utoipa::IntoResponses)]
pub enum Errors {
    /// A parameter is not what the route takes (an unknown status, a date that is not one, a
    /// `limit` out of range).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// The state could not be read (condmon stops on such errors; seen only as it does).
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// A partition has no holder at the moment (it is moving between instances), or the
    /// instance holding it did not answer: try again.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The errors of the routes that look something up: those of every route, and what is not
/// there.
#[derive(utoipa::IntoResponses)]
pub enum LookupErrors {
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No such customer, action, risk score or search (on the partition that would hold it).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The path of a customer's routes (described only: the handlers take the path themselves).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CustomerPath {
    /// The customer's setID
    #[param(example = "SHARE")]
    set_id: String,
    /// The customer
    #[param(example = "ACME")]
    customer_id: String,
}

/// A page of a list (described only: `conventions` reads `limit` and `offset` itself).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Page {
    /// Rows a page holds (1-10000, default 1000)
    limit: Option<usize>,
    /// The first row of the page (default 0)
    offset: Option<usize>,
}

/// What a probe answers when it fails.
#[derive(utoipa::IntoResponses)]
pub enum ProbeErrors {
    /// Not live (the loop made no progress), or not ready (with the reason).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "condmon",
        description = "The Accounts-Receivable Condition Monitor's HTTP API: customers, action \
                       lists, reports and conversations, answered by any instance; metrics and \
                       probes. Errors are problem details (RFC 9457); lists are paged with \
                       `limit` and `offset`."
    ),
    paths(
        super::metrics,
        super::livez,
        super::healthz,
        super::readyz,
        super::openapi_json,
        super::customer,
        super::violations,
        super::risk_score,
        super::action_list,
        super::action,
        super::future_actions,
        super::action_history,
        super::customer_conversations,
        super::family_actions,
        super::owner_actions,
        super::owner_action_status,
        super::condition_status,
        super::disputed_items,
        super::conversations_search,
        super::conversations_by_keyword,
        super::promises,
    ),
    components(schemas(Problem, Level, FamilyLevel, ListStatus, Search, GroupBy))
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
