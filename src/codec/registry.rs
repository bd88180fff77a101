//! A client of a Confluent-compatible schema registry (REST API, TopicNameStrategy subjects
//! `<topic>-value`). Used when `schema_registry_url` is configured; otherwise schema ids come
//! from `schemas/manifest.toml`.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry could not be reached, timed out (408), throttled (429) or failed (5xx):
    /// external, retried with back-off; no record is refused for it.
    #[error("schema registry unavailable ({url}): {message}")]
    Unavailable { url: String, message: String },
    /// 401 or 403: the credentials are wrong or lack a permission. Configuration, not data:
    /// the process stops rather than refuse records or retry forever.
    #[error(
        "schema registry {registry} denied access to subject `{subject}` (HTTP {status}): check \
         the registry credentials (CONDMON_SCHEMA_REGISTRY_USER_INFO, \
         CONDMON_SCHEMA_REGISTRY_TOKEN or their files) and their permissions: {body}"
    )]
    Denied {
        registry: String,
        subject: String,
        status: u16,
        body: String,
    },
    /// The registry answered and said no (another 4xx).
    #[error("schema registry refused {url}: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    /// The client could not be set up (an unreadable certificate file).
    #[error("schema registry client: {0}")]
    Setup(String),
}

/// How condmon proves who it is to the registry.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// HTTP basic authentication, from Confluent's `user:password` form.
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl RegistryAuth {
    /// `user:password`, as Confluent's `basic.auth.user.info`.
    pub fn basic(user_info: &str) -> Result<RegistryAuth, RegistryError> {
        let (user, password) = user_info.trim().split_once(':').ok_or_else(|| {
            RegistryError::Setup("basic auth credentials must be `user:password`".into())
        })?;
        Ok(RegistryAuth::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    fn header(&self) -> String {
        use base64::Engine;
        match self {
            RegistryAuth::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            RegistryAuth::Bearer(token) => format!("Bearer {}", token.trim()),
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header's value; never logged.
    authorization: Option<Arc<str>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .field("authenticated", &self.authorization.is_some())
            .finish()
    }
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

impl Registry {
    /// A registry over HTTP, or HTTPS trusting Mozilla's root certificates.
    pub fn new(base: &str) -> Registry {
        Self::connect(base, None, None).expect("no certificate to read")
    }

    /// A registry trusting `ca_pem`'s certificates (PEM) instead of Mozilla's when given, and
    /// sending `auth` with every request.
    pub fn connect(
        base: &str,
        ca_pem: Option<&[u8]>,
        auth: Option<RegistryAuth>,
    ) -> Result<Registry, RegistryError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let mut roots = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item.map_err(|e| RegistryError::Setup(format!("CA certificates: {e}")))? {
                    ureq::tls::PemItem::Certificate(cert) => roots.push(cert),
                    _ => continue,
                }
            }
            if roots.is_empty() {
                return Err(RegistryError::Setup(
                    "the CA file holds no PEM certificate".into(),
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Registry {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization: auth.map(|a| Arc::from(a.header())),
        })
    }

    fn post(&self, url: &str, body: String) -> Result<(u16, String), RegistryError> {
        let mut request = self.agent.post(url).header("Content-Type", CONTENT_TYPE);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization.as_ref());
        }
        read(url, request.send(body))
    }

    /// Registers `schema` under `subject` and returns its id. Registering a schema the subject
    /// already has returns the existing id, so this is safe on every start.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, text) = self.post(&url, body)?;
        if status != 200 {
            return Err(self.classify(url, subject, status, text));
        }
        id_of(url, status, text)
    }

    /// The id `schema` has under `subject`, without registering it; `None` when the subject
    /// does not have it.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let url = format!("{}/subjects/{subject}", self.base);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, text) = self.post(&url, body)?;
        match status {
            200 => id_of(url, status, text).map(Some),
            404 => Ok(None),
            _ => Err(self.classify(url, subject, status, text)),
        }
    }

    /// The schema text of `id`, met on `subject`'s topic; `None` when the registry does not
    /// know the id.
    pub fn schema(&self, id: u32, subject: &str) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let mut request = self.agent.get(&url).header("Accept", CONTENT_TYPE);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization.as_ref());
        }
        let (status, text) = read(&url, request.call())?;
        match status {
            200 => Ok(json_field(&url, &text, "schema")?
                .as_str()
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(self.classify(url, subject, status, text)),
        }
    }

    fn classify(&self, url: String, subject: &str, status: u16, body: String) -> RegistryError {
        match status {
            401 | 403 => RegistryError::Denied {
                registry: self.base.clone(),
                subject: subject.into(),
                status,
                body,
            },
            408 | 429 | 500.. => RegistryError::Unavailable {
                url,
                message: format!("HTTP {status}: {body}"),
            },
            _ => RegistryError::Refused { url, status, body },
        }
    }
}

fn id_of(url: String, status: u16, text: String) -> Result<u32, RegistryError> {
    json_field(&url, &text, "id")?
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or(RegistryError::Refused {
            url,
            status,
            body: text,
        })
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

fn json_field(url: &str, text: &str, field: &str) -> Result<serde_json::Value, RegistryError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RegistryError::Refused {
            url: url.to_string(),
            status: 200,
            body: format!("not JSON ({e}): {text}"),
        })?;
    Ok(value.get(field).cloned().unwrap_or(serde_json::Value::Null))
}
