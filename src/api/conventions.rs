//! What every answer of the HTTP API follows, whichever handler made it: errors as JSON
//! problem details (RFC 9457), and lists paged with `limit` and `offset`.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The content type of a problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error, as RFC 9457 describes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// The path asked for.
    pub instance: String,
}

/// A problem's response.
pub fn problem(status: StatusCode, detail: impl Into<String>, instance: &str) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: detail.into().trim().to_string(),
        instance: instance.to_string(),
    };
    (
        status,
        [(header::CONTENT_TYPE, PROBLEM_JSON)],
        serde_json::to_vec(&body).expect("problems serialize"),
    )
        .into_response()
}

/// Bodies read to turn them into problems or pages are bounded (a list is a few MB at most).
const MAX_BODY: usize = 256 << 20;

/// Turns every error answer that is not a problem yet (a handler's text, a rejected query
/// string, an unknown path) into one, keeping its status and its text as the detail.
pub async fn problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (_, body) = response.into_parts();
    let text = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(the answer could not be read: {e})"),
    };
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    problem(status, detail, &instance)
}

/// The most rows a page holds, and what it holds when `limit` is not given.
pub const MAX_LIMIT: usize = 10_000;
pub const DEFAULT_LIMIT: usize = 1_000;

/// Pages every list (a JSON array) answered to a client: `?limit=` (default 1,000, at most
/// 10,000) rows from `?offset=` (default 0), with the whole list's length in `X-Total-Count`
/// and the next page in a `Link: <…>; rel="next"` header. Lists one instance asks another for
/// (to merge them) are whole: they are paged once merged.
pub async fn pages(request: Request, next: Next) -> Response {
    let forwarded = request.headers().contains_key(super::FORWARDED);
    let uri = request.uri().clone();
    let page = match Page::of(uri.query()) {
        Ok(page) => page,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, detail, uri.path()),
    };
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if forwarded || response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the answer could not be read: {e}"),
                uri.path(),
            );
        }
    };
    // Only a list is paged: an object (a customer, a report's totals) is passed on unparsed.
    let is_list = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let rows = match is_list.then(|| serde_json::from_slice::<serde_json::Value>(&bytes)) {
        Some(Ok(serde_json::Value::Array(rows))) => rows,
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    let total = rows.len();
    let end = page.offset.saturating_add(page.limit).min(total);
    let start = page.offset.min(total);
    let slice: Vec<serde_json::Value> = rows[start..end].to_vec();
    parts.headers.insert(
        "x-total-count",
        HeaderValue::from_str(&total.to_string()).expect("a number is a header value"),
    );
    if end < total {
        let next = page.next(uri.path(), uri.query(), end);
        if let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            parts.headers.insert(header::LINK, link);
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&slice).expect("rows serialize")),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    limit: usize,
    offset: usize,
}

impl Page {
    fn of(query: Option<&str>) -> Result<Page, String> {
        let mut page = Page {
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("`{name}` must be a whole number, not `{value}`"))
            };
            match name {
                "limit" => page.limit = number()?,
                "offset" => page.offset = number()?,
                _ => {}
            }
        }
        if !(1..=MAX_LIMIT).contains(&page.limit) {
            return Err(format!(
                "`limit` must be 1 to {MAX_LIMIT}, not {}",
                page.limit
            ));
        }
        Ok(page)
    }

    /// The path and query of the page after this one (ending at `end`).
    fn next(&self, path: &str, query: Option<&str>, end: usize) -> String {
        let kept: Vec<&str> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.starts_with("offset=") && !p.starts_with("limit=") && !p.is_empty())
            .collect();
        let mut query = kept.join("&");
        if !query.is_empty() {
            query.push('&');
        }
        format!("{path}?{query}limit={}&offset={end}", self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_from_the_query_and_the_next_keeps_the_filters() {
        assert_eq!(
            Page::of(None),
            Ok(Page {
                limit: DEFAULT_LIMIT,
                offset: 0
            })
        );
        let page = Page::of(Some("status=NEW&limit=2&offset=4")).unwrap();
        assert_eq!(
            page,
            Page {
                limit: 2,
                offset: 4
            }
        );
        assert_eq!(
            page.next(
                "/owners/JDOE/actions",
                Some("status=NEW&limit=2&offset=4"),
                6
            ),
            "/owners/JDOE/actions?status=NEW&limit=2&offset=6"
        );
        assert!(Page::of(Some("limit=0")).is_err());
        assert!(Page::of(Some("limit=20000")).is_err());
        assert!(
            Page::of(Some("offset=-1"))
                .unwrap_err()
                .contains("whole number")
        );
    }
}
