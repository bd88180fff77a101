//! The operations kit, tested for real: the alert rules with Prometheus' own `promtool`, and
//! the dashboard and the alerts against what a running condmon exports (a real /metrics
//! scrape through a real broker).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use condmon::model::{CustomerChange, CustomerKey, InputEvent, ItemChange};
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(60);

/// A customer of JDOE's with an invoice of 5,000.00 due 2026-01-15: in collection from
/// 2026-03-02 on (actions, a violation, timers).
fn in_collection(customer: &str) -> (CustomerChange, ItemChange) {
    let key = CustomerKey::new("SHARE", customer);
    let mut master = CustomerChange::new(&key, &format!("{customer} Inc"), "USD");
    master.collector = Some("JDOE".into());
    let invoice = ItemChange::invoice(
        &key,
        "US001",
        "INV-1",
        Decimal::from(5000),
        "USD",
        "2026-01-15".parse().unwrap(),
    );
    (master, invoice)
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .expect("promtool (Debian's `prometheus` package; deploy/install-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_alert_rules_are_valid_and_fire_on_what_they_describe() {
    let (ok, text) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts-test.yml"]);
    assert!(ok && text.contains("SUCCESS"), "{text}");
}

/// Every `condmon_…` name a PromQL expression of `text` uses, as the family it belongs to
/// (a histogram's `_bucket`, `_sum` and `_count` are its family's).
fn names_queried(text: &str, families: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (start, _) in text.match_indices("condmon_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.contains(*base))
            })
            .map_or(name.clone(), String::from);
        out.insert(family);
    }
    out
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let (_broker, dir, config) = deployment(|config, _| {
        config.kafka.statistics_interval_ms = 500;
    });
    let condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    condmon.wait_healthy(WAIT);
    // A customer in collection (actions, violations, timers) and a record refused (a dead
    // letter), so that every labelled series has a value.
    let (master, invoice) = in_collection("OPS");
    let mut bad = record(&config, &InputEvent::Item(invoice.clone()));
    bad.payload = Some(vec![0, 0, 0, 0]);
    produce(
        &config,
        vec![
            record(&config, &InputEvent::Customer(master)),
            record(&config, &InputEvent::Item(invoice)),
            bad,
        ],
    );
    condmon.wait_customer("OPS", WAIT);
    // The committed positions' lag is probed every 10 s.
    let deadline = std::time::Instant::now() + WAIT;
    let body = loop {
        let (_, body) = condmon.get("/metrics");
        let ready = metric(&body, "condmon_state_disk_size_bytes").unwrap_or(0.0) > 0.0
            && body.contains("condmon_kafka_queue_messages{client=\"producer\"}")
            && body.contains("condmon_kafka_consumer_lag{")
            && body.contains("condmon_consumer_lag{")
            && body.contains("condmon_dead_letters_total{");
        if ready {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let families: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();

    let dashboard = std::fs::read_to_string(repo().join("deploy/grafana/condmon.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    let exprs: String = parsed["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| format!("{}\n", t["expr"].as_str().unwrap()))
        .collect();
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    for (what, text) in [("dashboard", exprs.as_str()), ("alerts", alerts.as_str())] {
        let queried = names_queried(text, &families);
        assert!(queried.len() > 10, "{what}: {queried:?}");
        let missing: Vec<&String> = queried.difference(&families).collect();
        assert!(
            missing.is_empty(),
            "{what} queries metrics condmon does not export: {missing:?}"
        );
    }

    // What an SRE reads on day one, with values that mean something.
    assert!(body.contains(&format!(
        "condmon_build_info{{commit=\"unknown\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(metric(&body, "condmon_commit_seconds_count").unwrap() >= 1.0);
    assert!(metric(&body, "condmon_last_commit_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(
        metric(&body, "condmon_business_date_timestamp_seconds"),
        Some(1_772_409_600.0),
        "2026-03-02, the business date of the file clock"
    );
    assert!(metric(&body, "condmon_state_disk_available_bytes").unwrap() > 0.0);
    assert!(metric(&body, "condmon_state_live_data_bytes").is_some());
    assert_eq!(metric(&body, "condmon_state_write_stopped"), Some(0.0));
    assert!(
        !body.contains("customer_id=") && !body.contains("OPS"),
        "no customer in any label"
    );
}

/// The virtualenv `deploy/install-deps.sh` makes for the Python tools (kubernetes-validate).
fn ops_tool(name: &str) -> std::path::PathBuf {
    let venv = repo().join("target/ops-venv/bin").join(name);
    if venv.exists() { venv } else { name.into() }
}

fn validate(files: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new(ops_tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(files)
        .output()
        .expect("kubernetes-validate (deploy/install-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("ERROR"), text)
}

#[test]
fn the_kubernetes_manifests_are_valid_and_run_condmon_as_the_scale_out_design_wants() {
    let k8s = repo().join("deploy/k8s");
    let kustomization = std::fs::read_to_string(k8s.join("kustomization.yaml")).unwrap();
    let mut manifests: Vec<std::path::PathBuf> = std::fs::read_dir(&k8s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    manifests.sort();
    for manifest in &manifests {
        let name = manifest.file_name().unwrap().to_str().unwrap();
        assert!(
            kustomization.contains(&format!("- {name}")),
            "{name} not in kustomization.yaml"
        );
    }
    let (ok, text) = validate(&manifests);
    assert!(ok, "{text}");
    for kind in [
        "statefulset",
        "service",
        "poddisruptionbudget",
        "configmap",
        "secret",
    ] {
        assert!(
            text.contains(&format!("resource {kind}/")),
            "no {kind}: {text}"
        );
    }
    // The validator is not a rubber stamp: a misspelt field is refused.
    let broken = tempfile::tempdir().unwrap();
    let statefulset = std::fs::read_to_string(k8s.join("statefulset.yaml")).unwrap();
    let typo = broken.path().join("statefulset.yaml");
    std::fs::write(&typo, statefulset.replace("serviceName:", "servicename:")).unwrap();
    assert!(!validate(&[typo]).0, "a misspelt field passed");

    // What the scale-out design needs of them: a stable name per pod as its instance id and
    // its advertised address, a volume for the state, the probes, the config that parses.
    for needed in [
        "kind: StatefulSet",
        "fieldPath: metadata.name",
        "name: CONDMON_INSTANCE_ID\n              value: \"$(POD_NAME)\"",
        "value: \"$(POD_NAME).condmon-headless:9465\"",
        "serviceName: condmon-headless",
        "volumeClaimTemplates:",
        "path: /readyz",
        "path: /livez",
        "secretRef:",
        "runAsNonRoot: true",
    ] {
        assert!(
            statefulset.contains(needed),
            "statefulset.yaml lacks {needed}"
        );
    }
    let configmap = std::fs::read_to_string(k8s.join("configmap.yaml")).unwrap();
    let (_, block) = configmap.split_once("condmon.toml: |\n").unwrap();
    let toml_text: String = block
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let config: condmon::config::Config = toml::from_str(&toml_text).expect("the config parses");
    assert!(config.kafka.static_membership);
    assert_eq!(config.http_listen, "0.0.0.0:9464");
    assert!(config.topics.partitions >= 2, "room to scale out");
}

#[test]
fn the_compose_file_mounts_what_exists_and_prometheus_loads_the_alerts() {
    let deploy = repo().join("deploy");
    // Every service there, and every file it mounts from the repository exists.
    let script = r#"
import sys, yaml, os
compose = yaml.safe_load(open(sys.argv[1]))
services = compose["services"]
for name in ["broker", "condmon", "prometheus", "grafana"]:
    assert name in services, name
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = os.path.join(os.path.dirname(sys.argv[1]), source)
            assert os.path.exists(path), f"{name}: {source} does not exist"
print("ok")
"#;
    let out = Command::new(ops_tool("python"))
        .args(["-c", script])
        .arg(deploy.join("compose.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus' configuration, with the rules where the compose file mounts them.
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(deploy.join("prometheus/prometheus.yml")).unwrap();
    std::fs::copy(
        deploy.join("prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        config.replace("/etc/prometheus/alerts.yml", "alerts.yml"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Undoes the image test's mounts and stops its process, however the test ends.
struct Mounted {
    image: String,
    binds: Vec<std::path::PathBuf>,
    child: Option<std::process::Child>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for bind in self.binds.iter().rev() {
            let _ = Command::new("umount").arg(bind).status();
        }
        let _ = Command::new("podman")
            .args(["image", "unmount", &self.image])
            .status();
        // Each build leaves a 400 MB image (the debug binary); the base stays cached. Kept
        // images filled the disk of a machine that runs the tests often.
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.image])
            .status();
    }
}

/// The container image, built as the README says (a base from Debian's packages, the binary
/// copied in) and run as a container runtime would: its entrypoint, as its user, with its
/// environment, the state directory a volume and the configuration mounted. `podman run`
/// cannot run here (the sandbox refuses crun's setrlimit), so the image's file system is
/// mounted and entered with `chroot --userspec`.
#[test]
fn the_image_runs_as_its_user_passes_readiness_and_processes_a_record() {
    run("deploy/image/base.sh", &[]);
    let image = "localhost/condmon:test";
    run(
        "podman",
        &[
            "build",
            "--quiet",
            "--build-arg",
            "BINARY=target/debug/condmon",
            "-t",
            image,
            ".",
        ],
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&run("podman", &["image", "inspect", image])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "10001:10001", "not root");
    assert!(
        config["Volumes"].get("/var/lib/condmon").is_some(),
        "{config}"
    );
    assert_eq!(config["Entrypoint"][0], "/usr/local/bin/condmon");
    assert_eq!(config["Cmd"][0], "run");
    let env: Vec<(String, String)> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::config(&broker, dir.path());
    let host = settings.clone();
    settings.state_dir = "/var/lib/condmon/state".into();
    settings.rules_file = "/etc/condmon/rules.toml".into();
    settings.schemas_dir = "/usr/share/condmon/schemas".into();
    create_topics(&settings);
    let http = settings.http_listen.clone();
    let config_file = dir.path().join("condmon.toml");
    std::fs::write(&config_file, toml::to_string(&settings).unwrap()).unwrap();
    let volume = dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    run("chown", &["10001:10001", volume.to_str().unwrap()]);

    let root = std::path::PathBuf::from(run("podman", &["image", "mount", image]));
    let mut mounted = Mounted {
        image: image.into(),
        binds: Vec::new(),
        child: None,
    };
    for (source, target) in [
        (&volume, root.join("var/lib/condmon")),
        (&config_file, root.join("etc/condmon/condmon.toml")),
    ] {
        run(
            "mount",
            &["--bind", source.to_str().unwrap(), target.to_str().unwrap()],
        );
        mounted.binds.push(target);
    }
    let entrypoint: Vec<String> = config["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .chain(config["Cmd"].as_array().unwrap())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let log = std::fs::File::create(dir.path().join("image.log")).unwrap();
    let child = Command::new("chroot")
        .arg("--userspec=10001:10001")
        .arg(&root)
        .args(&entrypoint)
        .env_clear()
        .envs(env)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    mounted.child = Some(child);

    let deadline = std::time::Instant::now() + WAIT;
    let log_tail = || std::fs::read_to_string(dir.path().join("image.log")).unwrap_or_default();
    while http_get(&http, "/readyz").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready:\n{}",
            log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What answers is the image's condmon, as its user (chroot has exec'd it).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "10001"),
        "{uid}"
    );
    assert!(status.starts_with("Name:\tcondmon"), "{status}");
    // What answers is the image's condmon, as its user (chroot has exec'd it).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "10001"),
        "{uid}"
    );
    assert!(status.starts_with("Name:\tcondmon"), "{status}");
    let key = CustomerKey::new("SHARE", "IMG");
    let invoice = ItemChange::invoice(
        &key,
        "US001",
        "INV-1",
        Decimal::from(2500),
        "USD",
        "2026-01-15".parse().unwrap(),
    );
    produce(&host, vec![record(&host, &InputEvent::Item(invoice))]);
    loop {
        let (status, body) = http_get(&http, "/customers/SHARE/IMG");
        if status == 200 {
            assert!(body.contains("INV-1"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not processed:\n{}",
            log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The state was written by condmon's user, on the volume.
    let state = volume.join("state");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&state).unwrap());
    assert_eq!(owner, 10001);
}

/// The HTTP API against its own description, by an independent client: schemathesis
/// generates requests from `/openapi.json` (every route, path and query parameters, valid and
/// not) against a running condmon with customers in it, and checks that no answer is a 5xx and
/// none contradicts the document (status codes, content types, bodies).
#[test]
fn an_independent_client_finds_the_api_as_its_openapi_document_says() {
    let (_broker, dir, config) = deployment(|_, _| {});
    let condmon = Condmon::start(&config, dir.path(), "2026-03-02");
    condmon.wait_healthy(WAIT);
    // The customer of the document's examples, so that generated requests reach real data.
    let (master, invoice) = in_collection("ACME");
    produce(
        &config,
        vec![
            record(&config, &InputEvent::Customer(master)),
            record(&config, &InputEvent::Item(invoice)),
        ],
    );
    condmon.wait_customer("ACME", WAIT);
    condmon.wait_found("/readyz", WAIT);

    // The document itself, and what every answer follows.
    let (status, document) = condmon.get("/openapi.json");
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/customers/{set_id}/{customer_id}/actions",
        "/owners/{owner}/actions",
        "/promises",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} undocumented");
    }
    let (status, body) = condmon.get("/customers/SHARE/NOBODY");
    assert_eq!(status, 404);
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (problem["status"].as_u64(), problem["title"].as_str()),
        (Some(404), Some("Not Found"))
    );
    assert_eq!(problem["instance"], "/customers/SHARE/NOBODY");
    let (status, _) = condmon.get("/owners/JDOE/actions?limit=0");
    assert_eq!(status, 400, "a page of nothing");
    let (_, all) = condmon.get("/owners/JDOE/actions");
    let all: Vec<serde_json::Value> = serde_json::from_str(&all).unwrap();
    let (_, first) = condmon.get("/owners/JDOE/actions?limit=1");
    let first: Vec<serde_json::Value> = serde_json::from_str(&first).unwrap();
    assert!(!all.is_empty());
    assert_eq!(first, all[..1]);

    let out = Command::new(ops_tool("schemathesis"))
        // Its cache stays in the test's directory, not in the repository.
        .current_dir(dir.path())
        .args(["run", &format!("http://{}/openapi.json", condmon.http)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "20",
            "--seed",
            "7",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis (deploy/install-deps.sh installs it)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    let cases = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        cases.trim().ends_with("passed") && !cases.contains("failed"),
        "{report}"
    );
}

/// Customer data is served on its own address, not on the metrics port, and only to a
/// request that carries the configured bearer token; errors are problem details.
#[test]
fn customer_data_is_served_only_on_its_address_and_behind_its_token() {
    let (_broker, dir, config) = deployment(|config, _| {
        config.api_listen = format!("127.0.0.1:{}", free_port());
    });
    let api = config.api_listen.clone();
    let condmon = Condmon::start_with_env(
        &config,
        dir.path(),
        "2026-03-02",
        &[("CONDMON_API_TOKEN", "s3cret-token")],
    );
    condmon.wait_healthy(WAIT);
    let key = CustomerKey::new("SHARE", "SEC");
    produce(
        &config,
        vec![record(
            &config,
            &InputEvent::Customer(CustomerChange::new(&key, "Sec Inc", "USD")),
        )],
    );
    let deadline = std::time::Instant::now() + WAIT;
    while http_get_raw(&api, "/customers/SHARE/SEC", Some("s3cret-token")).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never served");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Not on the metrics port.
    let (status, body) = condmon.get("/customers/SHARE/SEC");
    assert_eq!(status, 404, "{body}");
    assert!(condmon.get("/metrics").1.contains("condmon_build_info"));
    // Not without the token, nor with another.
    for token in [None, Some("guess")] {
        let (status, response) = http_get_raw(&api, "/customers/SHARE/SEC", token);
        assert_eq!(status, 401, "{response}");
        assert!(
            response.to_lowercase().contains("www-authenticate: bearer"),
            "{response}"
        );
        assert!(response.contains("application/problem+json"), "{response}");
        assert!(!response.contains("Sec Inc"), "{response}");
    }
    let (status, response) = http_get_raw(&api, "/owners/JDOE/actions", None);
    assert_eq!(status, 401, "{response}");
    // The metrics are not on the data port; the API's description is, without a token.
    assert_eq!(http_get_raw(&api, "/metrics", Some("s3cret-token")).0, 404);
    assert_eq!(http_get_raw(&api, "/openapi.json", None).0, 200);
}
