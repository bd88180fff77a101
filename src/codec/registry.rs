//! A client of a Confluent-compatible schema registry (REST API, TopicNameStrategy subjects
//! `<topic>-value`). Used when `schema_registry_url` is configured; otherwise schema ids come
//! from `schemas/manifest.toml`.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry could not be reached or answered 5xx: external, retried with back-off.
    #[error("schema registry unavailable ({url}): {message}")]
    Unavailable { url: String, message: String },
    /// The registry answered and said no (4xx other than "not found").
    #[error("schema registry refused {url}: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

#[derive(Clone)]
pub struct Registry {
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish()
    }
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl Registry {
    pub fn new(base: &str) -> Registry {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Registry {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Registers `schema` under `subject` and returns its id. Registering a schema the subject
    /// already has returns the existing id, so this is safe on every start.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let response = self
            .agent
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .send(body);
        let (status, text) = read(&url, response)?;
        if status != 200 {
            return Err(classify(url, status, text));
        }
        json_field(&url, &text, "id")?
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or(RegistryError::Refused {
                url,
                status,
                body: text,
            })
    }

    /// The schema text of `id`; `None` when the registry does not know the id.
    pub fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let response = self.agent.get(&url).header("Accept", CONTENT_TYPE).call();
        let (status, text) = read(&url, response)?;
        match status {
            200 => Ok(json_field(&url, &text, "schema")?
                .as_str()
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(classify(url, status, text)),
        }
    }
}

fn read(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, String), RegistryError> {
    let unavailable = |e: ureq::Error| RegistryError::Unavailable {
        url: url.to_string(),
        message: e.to_string(),
    };
    let mut response = response.map_err(unavailable)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(unavailable)?;
    Ok((status, text))
}

fn classify(url: String, status: u16, body: String) -> RegistryError {
    if status >= 500 {
        RegistryError::Unavailable {
            url,
            message: format!("HTTP {status}: {body}"),
        }
    } else {
        RegistryError::Refused { url, status, body }
    }
}

fn json_field(url: &str, text: &str, field: &str) -> Result<serde_json::Value, RegistryError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RegistryError::Refused {
            url: url.to_string(),
            status: 200,
            body: format!("not JSON ({e}): {text}"),
        })?;
    Ok(value.get(field).cloned().unwrap_or(serde_json::Value::Null))
}
