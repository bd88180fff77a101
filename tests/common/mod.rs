//! Test harness: a real Tansu broker on a free port, and the real `condmon` binary.
#![allow(dead_code)]

pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use condmon::codec::SchemaCatalog;
use condmon::config::Config;
use condmon::kafka::{self, OutRecord, ReadRecord, Sink};
use condmon::model::InputEvent;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Tansu binary: `$TANSU_BIN`, else `~/.cargo/bin/tansu`, else `tansu` on the PATH.
pub fn tansu_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin.into();
    }
    let cargo_bin =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        "tansu".into()
    }
}

/// A Tansu broker process with in-memory storage, killed on drop.
pub struct Broker {
    child: Option<Child>,
    pub addr: String,
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu (install it with deploy/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            child: Some(child),
            addr,
        }
    }

    /// A broker this harness did not start (e.g. behind a TLS terminator): only its address.
    pub fn external(addr: &str) -> Broker {
        Broker {
            child: None,
            addr: addr.into(),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A configuration for the test broker, with its own state directory and HTTP port.
pub fn config(broker: &Broker, dir: &Path) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = broker.addr.clone();
    config.kafka.group_id = "condmon-test".into();
    // A crashed instance's partitions move after 6 s instead of the default 45 s.
    config
        .kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    config
        .kafka
        .consumer
        .insert("heartbeat.interval.ms".into(), "500".into());
    // Tansu 0.6 cannot fetch from the middle of a record batch (README, "Delivery guarantees").
    config
        .kafka
        .producer
        .insert("batch.num.messages".into(), "1".into());
    config.topics.partitions = 2;
    config.state_dir = dir.join("state");
    config.rules_file = repo().join("topology/rules.toml");
    config.schemas_dir = repo().join("schemas");
    config.http_listen = format!("127.0.0.1:{}", free_port());
    // Operations and customer data on one port, as configured so: the tests ask both.
    config.api_listen = config.http_listen.clone();
    config.pipeline.tick_ms = 200;
    // The tests move the file clock by days in seconds: let the business date follow it (the
    // clock-jump guard is tested on its own with the default bound).
    config.pipeline.max_clock_jump_days = 36_500;
    config.pipeline.linger_ms = 10;
    config
}

/// What nearly every test starts from: a broker of its own, a directory, the test
/// configuration (changed first by `adjust`, which gets the directory) and its topics. Bind
/// the broker (`_broker`, not `_`): it stops when dropped.
pub fn deployment(adjust: impl FnOnce(&mut Config, &Path)) -> (Broker, tempfile::TempDir, Config) {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker, dir.path());
    adjust(&mut config, dir.path());
    create_topics(&config);
    (broker, dir, config)
}

/// Writes a rule document into `dir` and returns its path (for `Config::rules_file`).
pub fn rules_file(dir: &Path, rules: &str) -> PathBuf {
    let path = dir.join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    path
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn create_topics(config: &Config) {
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let specs = condmon::pipeline::changelog::topic_specs(config);
        match rt.block_on(kafka::create_topics(config, &specs)) {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create topics: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("create topics: {e}"),
        }
    }
}

/// Produces records and waits for the broker's acknowledgement.
pub fn produce(config: &Config, records: Vec<OutRecord>) {
    let failed = runtime()
        .block_on(async { Sink::new(config).unwrap().send_all(records).await })
        .failed;
    assert!(failed.is_empty(), "produce failed: {failed:?}");
}

/// An input event as the ERP would publish it: Avro, keyed by customer.
pub fn record(config: &Config, event: &InputEvent) -> OutRecord {
    let catalog = SchemaCatalog::load(&config.schemas_dir).unwrap();
    OutRecord {
        topic: config.topics.topic(event.stream()).to_string(),
        partition: None,
        key: Some(event.record_key().into_bytes()),
        payload: Some(catalog.encode_input(event).unwrap()),
        headers: vec![],
    }
}

/// Reads `topic` until `predicate` holds for what was read, or panics after `timeout`.
pub fn wait_for(
    config: &Config,
    topic: &str,
    timeout: Duration,
    predicate: impl Fn(&[ReadRecord]) -> bool,
) -> Vec<ReadRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = kafka::read_topic(config, topic, usize::MAX, Duration::from_secs(5)).unwrap();
        if predicate(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {topic}: {} record(s) so far",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `condmon run` process, with a file clock the test moves. Killed (SIGKILL) on drop.
pub struct Condmon {
    child: Option<Child>,
    log_path: PathBuf,
    pub config_path: PathBuf,
    pub clock_path: PathBuf,
    pub http: String,
}

impl Condmon {
    pub fn start(config: &Config, dir: &Path, today: &str) -> Condmon {
        Self::start_with_env(config, dir, today, &[])
    }

    pub fn start_with_env(
        config: &Config,
        dir: &Path,
        today: &str,
        env: &[(&str, &str)],
    ) -> Condmon {
        let config_path = dir.join("condmon.toml");
        std::fs::write(&config_path, toml::to_string(config).unwrap()).unwrap();
        let clock_path = dir.join("today");
        if !clock_path.exists() {
            std::fs::write(&clock_path, today).unwrap();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("condmon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_condmon"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--clock")
            .arg(format!("file:{}", clock_path.display()))
            .env("RUST_LOG", "info,rdkafka=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Condmon {
            child: Some(child),
            log_path: dir.join("condmon.log"),
            config_path,
            clock_path,
            http: config.http_listen.clone(),
        }
    }

    /// Moves business time of the running process.
    pub fn set_today(&self, today: &str) {
        std::fs::write(&self.clock_path, today).unwrap();
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to end by itself (e.g. an injected crash); its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "condmon did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads /metrics until `series` has `value`.
    pub fn wait_metric(&self, series: &str, value: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self.get("/metrics");
            if metric(&body, series) == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} never reached {value}:\n{body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait: the clean shutdown path.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap()
    }

    /// GET on the HTTP API: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.http, path)
    }

    /// Waits until the customer's state is served (its first record processed).
    pub fn wait_customer(&self, customer: &str, timeout: Duration) {
        self.wait_found(&format!("/customers/SHARE/{customer}"), timeout);
    }

    /// Waits until GET `path` answers 200 (what it shows has been committed), and returns
    /// the body.
    pub fn wait_found(&self, path: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(path);
            if status == 200 {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: still {status} after {timeout:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.get("/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "condmon did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Condmon {
    fn drop(&mut self) {
        let was_running = self.child.is_some();
        self.kill();
        if was_running && std::thread::panicking() {
            // The log holds every run of this state directory (it is appended to): its
            // warnings from the start (a zombie's intrusion, a retried send, a rebalance
            // error long before the failure), then its last lines.
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let path = self.log_path.display();
            eprintln!("--- {path}: warnings and errors of every run ---");
            for line in warnings.iter().skip(warnings.len().saturating_sub(200)) {
                eprintln!("{line}");
            }
            let tail: Vec<&str> = log.lines().rev().take(150).collect();
            eprintln!("--- {path} (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, response) = http_get_raw(addr, path, None);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// GET, with a bearer token if given: (status, the whole response, headers included).
pub fn http_get_raw(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The value of a metric line (exact name and labels as exposed), if present.
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// A stand-in for a Confluent-compatible schema registry (none can run on this machine: it
/// needs a JVM and Maven Central, or Docker). Real HTTP, the registry's semantics for the
/// three calls condmon makes: `POST /subjects/{subject}/versions` (register: the same schema
/// gets the same id), `POST /subjects/{subject}` (look up: 404 unless the subject has the
/// schema) and `GET /schemas/ids/{id}` (404 for an unknown id); credentials checked when
/// required, and any status forced on request. HTTPS comes from `stunnel` in front of it.
pub struct StandInRegistry {
    pub url: String,
    pub schemas: Arc<Mutex<RegistrySchemas>>,
    addr: std::net::SocketAddr,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct RegistrySchemas {
    pub texts: Vec<String>,
    pub subjects: std::collections::HashMap<String, Vec<u32>>,
    /// When set, every request is answered with this status (an outage, throttling, revoked
    /// credentials).
    pub answer: Option<u16>,
    /// When set, every request must carry this `Authorization` header, else 401.
    pub authorization: Option<String>,
}

use std::sync::{Arc, Mutex};

impl StandInRegistry {
    pub fn start(rt: &tokio::runtime::Runtime) -> StandInRegistry {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut registry = StandInRegistry {
            url: format!("http://{addr}"),
            schemas: Arc::default(),
            addr,
            server: None,
        };
        registry.serve(rt, listener);
        registry
    }

    fn serve(&mut self, rt: &tokio::runtime::Runtime, listener: tokio::net::TcpListener) {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        use axum::{Json, Router};
        use serde_json::{Value, json};
        type Shared = Arc<Mutex<RegistrySchemas>>;

        async fn register(
            State(db): State<Shared>,
            Path(subject): Path<String>,
            Json(body): Json<Value>,
        ) -> Json<Value> {
            let text = body["schema"].as_str().unwrap().to_string();
            let mut db = db.lock().unwrap();
            let id = match db.texts.iter().position(|t| *t == text) {
                Some(i) => i as u32 + 1,
                None => {
                    db.texts.push(text);
                    db.texts.len() as u32
                }
            };
            db.subjects.entry(subject).or_default().push(id);
            Json(json!({ "id": id }))
        }

        async fn lookup(
            State(db): State<Shared>,
            Path(subject): Path<String>,
            Json(body): Json<Value>,
        ) -> (StatusCode, Json<Value>) {
            let text = body["schema"].as_str().unwrap();
            let db = db.lock().unwrap();
            let id = db
                .texts
                .iter()
                .position(|t| t == text)
                .map(|i| i as u32 + 1);
            match id.filter(|id| {
                db.subjects
                    .get(&subject)
                    .is_some_and(|ids| ids.contains(id))
            }) {
                Some(id) => (
                    StatusCode::OK,
                    Json(json!({ "id": id, "subject": subject })),
                ),
                None => (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error_code": 40403, "message": "Schema not found" })),
                ),
            }
        }

        async fn guard(
            State(db): State<Shared>,
            request: axum::extract::Request,
            next: axum::middleware::Next,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let (answer, required) = {
                let db = db.lock().unwrap();
                (db.answer, db.authorization.clone())
            };
            if let Some(status) = answer {
                let status = StatusCode::from_u16(status).unwrap();
                return (
                    status,
                    Json(json!({ "error_code": status.as_u16(), "message": "forced" })),
                )
                    .into_response();
            }
            let given = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if required.is_some() && given != required.as_deref() {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error_code": 401, "message": "Unauthorized" })),
                )
                    .into_response();
            }
            next.run(request).await
        }

        async fn by_id(State(db): State<Shared>, Path(id): Path<u32>) -> (StatusCode, Json<Value>) {
            match db.lock().unwrap().texts.get((id as usize).wrapping_sub(1)) {
                Some(text) => (StatusCode::OK, Json(json!({ "schema": text }))),
                None => (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error_code": 40403, "message": "Schema not found" })),
                ),
            }
        }

        // No keep-alive: once stopped, the registry refuses every request, pooled or not.
        async fn close(mut response: axum::response::Response) -> axum::response::Response {
            response
                .headers_mut()
                .insert("connection", axum::http::HeaderValue::from_static("close"));
            response
        }
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(register))
            .route("/subjects/{subject}", post(lookup))
            .route("/schemas/ids/{id}", get(by_id))
            .layer(axum::middleware::from_fn_with_state(
                self.schemas.clone(),
                guard,
            ))
            .layer(axum::middleware::map_response(close))
            .with_state(self.schemas.clone());
        self.server = Some(rt.spawn(async move { axum::serve(listener, app).await.unwrap() }));
    }

    /// Takes the registry down (connections refused) until `restart`.
    pub fn stop(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = rt.block_on(server);
        }
    }

    /// Serves again on the same address, with the same schemas.
    pub fn restart(&mut self, rt: &tokio::runtime::Runtime) {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.serve(rt, listener);
    }
}

/// An older version of the item schema, without `collector`, as another producer might have
/// registered it.
pub fn item_schema_v1() -> String {
    let current: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/item_change.avsc")).unwrap(),
    )
    .unwrap();
    let mut v1 = current;
    v1["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "collector");
    v1.to_string()
}

/// `event` (an item change) in the wire format, written with `item_schema_v1()` under `id`.
pub fn item_written_with_v1(event: &InputEvent, id: u32) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(&item_schema_v1()).unwrap();
    let mut json = condmon::codec::input_to_json(event);
    json.as_object_mut().unwrap().remove("collector");
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(condmon::codec::json_to_avro(&schema, &json, "items").unwrap())
        .unwrap();
    let mut bytes = vec![0];
    bytes.extend(id.to_be_bytes());
    bytes.extend(datum);
    bytes
}

/// The output events in `records` of `stream`.
pub fn decode(
    config: &Config,
    stream: condmon::model::Stream,
    records: &[ReadRecord],
) -> Vec<condmon::model::OutputEvent> {
    let catalog = config.schema_catalog().unwrap();
    records
        .iter()
        .map(|r| {
            catalog
                .decode_output(stream, r.payload.as_deref().unwrap())
                .unwrap()
        })
        .collect()
}

/// The outputs the operator gives for `events` on `today`, computed in-process (the oracle):
/// event id → (stream, bytes).
pub fn expected_outputs(
    config: &Config,
    events: &[InputEvent],
    today: &str,
) -> std::collections::HashMap<String, (condmon::model::Stream, Vec<u8>)> {
    oracle(config, events, today, None)
}

/// The oracle's outputs for `events` on `today`, then for the timers due `later` (if given).
pub fn oracle(
    config: &Config,
    events: &[InputEvent],
    today: &str,
    later: Option<&str>,
) -> std::collections::HashMap<String, (condmon::model::Stream, Vec<u8>)> {
    use condmon::pipeline::{Operator, Payload};
    let rules = condmon::rules::RuleSet::load(&config.rules_file).unwrap();
    let catalog = SchemaCatalog::load(&config.schemas_dir).unwrap();
    let operator = Operator::new(rules.into(), catalog.clone().into());
    let dir = tempfile::tempdir().unwrap();
    let store = condmon::state::Store::open(dir.path()).unwrap();
    store.ensure_partition(0).unwrap();
    let mut out = std::collections::HashMap::new();
    for event in events {
        let mut txn = store.txn();
        let bytes = catalog.encode_input(event).unwrap();
        let key = event.record_key();
        let Some(events) = operator
            .process(
                &mut txn,
                &[0],
                event.stream(),
                Some(&key),
                Payload::Avro(&bytes),
                today.parse().unwrap(),
            )
            .unwrap()
            .events()
        else {
            panic!("valid input refused")
        };
        store.commit(txn, &[]).unwrap();
        for e in events {
            out.insert(
                e.event_id().to_string(),
                (e.stream(), catalog.encode_output(&e).unwrap()),
            );
        }
    }
    if let Some(later) = later {
        let mut txn = store.txn();
        for e in operator
            .fire_timers(&mut txn, 0, later.parse().unwrap())
            .unwrap()
        {
            out.insert(
                e.event_id().to_string(),
                (e.stream(), catalog.encode_output(&e).unwrap()),
            );
        }
        store.commit(txn, &[]).unwrap();
    }
    out
}

/// Every record of every customer-facing output topic.
pub fn all_outputs(config: &Config) -> Vec<ReadRecord> {
    condmon::model::Stream::OUTPUTS
        .into_iter()
        .map(|s| config.topics.topic(s))
        .flat_map(|topic| {
            kafka::read_topic(config, topic, usize::MAX, Duration::from_secs(1)).unwrap()
        })
        .collect()
}

/// Every output is an event of the oracle's with the oracle's bytes (copies are allowed here:
/// the callers count them with [`count_ids`]).
pub fn assert_each_is_the_oracles(
    outputs: &[ReadRecord],
    expected: &std::collections::HashMap<String, (condmon::model::Stream, Vec<u8>)>,
) {
    for r in outputs {
        let id = r.header("condmon.event-id").unwrap();
        let Some((_, bytes)) = expected.get(id) else {
            panic!("event {id} is not the oracle's");
        };
        assert_eq!(
            r.payload.as_ref(),
            Some(bytes),
            "event {id} differs from the oracle"
        );
    }
}

/// How often each event id was produced.
pub fn count_ids(outputs: &[ReadRecord]) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    for r in outputs {
        *out.entry(r.header("condmon.event-id").unwrap().to_string())
            .or_default() += 1;
    }
    out
}
