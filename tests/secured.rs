//! A secured Kafka cluster, end to end: TLS with a certificate authority the test makes, the
//! server's certificate verified, a client certificate required, SASL SCRAM over TLS and zstd
//! compression, with the real broker (Tansu, with SCRAM users) behind a real TLS terminator
//! (`stunnel`), and the real `condmon run` process.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::*;
use common::*;
use condmon::config::Config;
use condmon::model::{CustomerChange, CustomerKey, InputEvent, ItemChange, OutputEvent, Stream};
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(60);

/// Tansu with SASL authentication required, listening in plain text on `inner` and advertising
/// `localhost:<outer>`, where the TLS terminator listens. Its users are made before
/// authentication is switched on (Tansu's `user create` needs an open broker), so its storage
/// is a file that outlives the first process.
fn tansu_with_users(dir: &Path, inner: u16, outer: u16, users: &[(&str, &str, &str)]) -> Killed {
    let start = |authenticate: bool| {
        let mut command = Command::new(tansu_binary());
        command
            .current_dir(dir)
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{inner}")])
            .args([
                "--advertised-listener-url",
                &format!("tcp://localhost:{outer}"),
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authenticate {
            command.arg("--authentication");
        }
        let child = Killed(command.spawn().expect("start tansu"));
        wait_listening(&format!("127.0.0.1:{inner}"));
        child
    };
    let open = start(false);
    for (user, password, mechanism) in users {
        run(Command::new(tansu_binary())
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{inner}"),
            ])
            .args(["--mechanism", mechanism, user, password]));
    }
    drop(open);
    start(true)
}

/// The librdkafka properties of a client of the secured cluster.
fn secured(config: &mut Config, ca: &Path, client: &(PathBuf, PathBuf), user: (&str, &str, &str)) {
    let settings = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", user.2),
        ("sasl.username", user.0),
        ("sasl.password", user.1),
        ("ssl.ca.location", &ca.display().to_string()),
        ("ssl.key.location", &client.0.display().to_string()),
        ("ssl.certificate.location", &client.1.display().to_string()),
    ];
    for (name, value) in settings {
        config.kafka.client.insert(name.into(), value.into());
    }
    config
        .kafka
        .producer
        .insert("compression.type".into(), "zstd".into());
}

#[test]
fn condmon_runs_over_tls_with_sasl_scram_and_refuses_a_server_it_does_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let server = pki.issue("server");
    let client = pki.issue("client");
    let (inner, outer) = (free_port(), free_port());
    let condmon_user = ("condmon", "condmon-s3cret", "SCRAM-SHA-512");
    let erp_user = ("erp", "erp-s3cret", "SCRAM-SHA-256");
    let _broker = tansu_with_users(
        dir.path(),
        inner,
        outer,
        &[
            (condmon_user.0, condmon_user.1, "scram512"),
            (erp_user.0, erp_user.1, "scram256"),
        ],
    );
    let _tls = stunnel(dir.path(), outer, inner, &server, Some(&pki.ca()));

    // The test's own clients (topics, the ERP's records, reading outputs) are those of the ERP.
    let plain = Broker::external(&format!("localhost:{outer}"));
    let mut erp = config(&plain, dir.path());
    secured(&mut erp, &pki.ca(), &client, erp_user);
    create_topics(&erp);

    // condmon's password comes from the environment only, never from its configuration file.
    let mut ours = erp.clone();
    secured(&mut ours, &pki.ca(), &client, condmon_user);
    ours.kafka.client.remove("sasl.password");
    let condmon = Condmon::start_with_env(
        &ours,
        dir.path(),
        "2026-03-01",
        &[("CONDMON_KAFKA_CLIENT_SASL_PASSWORD", condmon_user.1)],
    );
    condmon.wait_healthy(WAIT);

    let key = CustomerKey::new("SHARE", "ACME");
    let mut master = CustomerChange::new(&key, "Acme", "USD");
    master.collector = Some("JDOE".into());
    // 45 days past due on 2026-03-01: the sample rules open a collection plan.
    let invoice = ItemChange::invoice(
        &key,
        "US001",
        "INV-1",
        Decimal::from(4200),
        "USD",
        "2026-01-15".parse().unwrap(),
    );
    produce(
        &erp,
        vec![
            record(&erp, &InputEvent::Customer(master)),
            record(&erp, &InputEvent::Item(invoice)),
        ],
    );
    wait_for(&erp, &erp.topics.actions, WAIT, |records| {
        decode(&erp, Stream::Actions, records).iter().any(|e| {
            matches!(e, OutputEvent::Action(a) if a.customer_id == "ACME" && a.owner.as_deref() == Some("JDOE"))
        })
    });
    drop(condmon);

    // A broker whose certificate another authority signed is refused: nothing is read or
    // written, and the log says why.
    let stranger = Pki::new(&dir.path().join("stranger"));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut doubting = ours.clone();
    doubting.kafka.client.insert(
        "ssl.ca.location".into(),
        stranger.ca().display().to_string(),
    );
    doubting.state_dir = elsewhere.join("state");
    let condmon = Condmon::start_with_env(
        &doubting,
        &elsewhere,
        "2026-03-01",
        &[("CONDMON_KAFKA_CLIENT_SASL_PASSWORD", condmon_user.1)],
    );
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let log = std::fs::read_to_string(elsewhere.join("condmon.log")).unwrap_or_default();
        if log.contains("certificate verify failed") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate error logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(condmon.get("/readyz").0, 200, "{log}");
}
