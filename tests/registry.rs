//! Schema ids from a Confluent-compatible schema registry.
//!
//! No Confluent Schema Registry can run on this machine (it needs a JVM and Maven Central, or
//! Docker), so these tests talk over real HTTP to a stand-in that implements the two calls
//! condmon makes, with the registry's semantics: `POST /subjects/{subject}/versions` (the same
//! schema gets the same id) and `GET /schemas/ids/{id}` (404 for an unknown id).

mod common;

use common::StandInRegistry;
use condmon::codec::{CodecError, Registry, RegistryAuth, RegistryUse, SchemaCatalog};
use condmon::model::{InputEvent, ItemChange, ItemType, Stream};

fn item() -> InputEvent {
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "C1".into(),
        item_id: "INV-1".into(),
        item_line: 0,
        item_type: ItemType::Invoice,
        original_amount: "100.25".parse().unwrap(),
        open_amount: "100.25".parse().unwrap(),
        currency: "USD".into(),
        accounting_date: "2026-01-01".parse().unwrap(),
        due_date: "2026-01-31".parse().unwrap(),
        entry_type: "IN".into(),
        entry_reason: None,
        disputed_amount: "0".parse().unwrap(),
        ar_specialist: None,
        collector: Some("JDOE".into()),
        origin_item_id: None,
        origin_item_line: None,
        origin_payment_id: None,
    })
}

fn topic(stream: Stream) -> String {
    format!("ar.{}", stream.as_str())
}

/// A client acting as the ERP and condmon both: it registers every stream's schema.
const ERP: RegistryUse = RegistryUse {
    register_inputs: true,
    register_outputs: true,
};
/// condmon as `condmon run` uses the registry (the default configuration).
const CONDMON: RegistryUse = RegistryUse {
    register_inputs: false,
    register_outputs: true,
};

#[test]
fn ids_come_from_the_registry_and_unknown_ids_are_fetched_from_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = StandInRegistry::start(&rt);
    let (url, db) = (registry.url.clone(), registry.schemas.clone());
    let catalog = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, ERP)
        .unwrap();
    {
        let db = db.lock().unwrap();
        assert_eq!(
            db.texts.len(),
            condmon::model::Stream::all().count(),
            "one schema per stream"
        );
        assert!(db.subjects.contains_key("ar.items-value"));
        assert!(
            db.texts
                .iter()
                .any(|t| t.contains("\"logicalType\":\"decimal\"")),
            "logical types kept"
        );
    }
    let bytes = catalog.encode_input(&item()).unwrap();
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(Some(id), catalog.current_id(Stream::Items));
    assert!(
        id as usize <= Stream::all().count(),
        "a registry id, not the manifest's 1001: {id}"
    );

    // A second instance starting against the same registry gets the same ids ...
    let other = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, ERP)
        .unwrap();
    assert_eq!(other.current_id(Stream::Items), Some(id));
    // ... and a reader that has never seen an id asks the registry for it.
    let reader = SchemaCatalog::bundled().unwrap();
    assert!(matches!(
        reader.decode_input(Stream::Items, &bytes),
        Err(CodecError::UnknownSchemaId(_))
    ));
    let fresh = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, CONDMON)
        .unwrap();
    assert_eq!(fresh.decode_input(Stream::Items, &bytes).unwrap(), item());

    // An id the registry does not know either is bad data, as without a registry.
    let mut unknown = bytes.clone();
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    let err = fresh.decode_input(Stream::Items, &unknown).unwrap_err();
    assert!(matches!(err, CodecError::UnknownSchemaId(999)), "{err}");
    assert!(!err.is_external());
}

#[test]
fn records_written_with_an_older_registered_schema_resolve_into_the_current_one() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = StandInRegistry::start(&rt);
    let url = registry.url.clone();
    // An older producer registered a version without `collector` and wrote with it.
    let old_id = Registry::new(&url)
        .register("ar.items-value", &common::item_schema_v1())
        .unwrap();
    let bytes = common::item_written_with_v1(&item(), old_id);

    let catalog = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, CONDMON)
        .unwrap();
    assert_ne!(catalog.current_id(Stream::Items), Some(old_id));
    let InputEvent::Item(decoded) = catalog.decode_input(Stream::Items, &bytes).unwrap() else {
        panic!()
    };
    assert_eq!(decoded.collector, None);
    assert_eq!(decoded.open_amount, "100.25".parse().unwrap());
}

#[test]
fn an_unreachable_registry_is_external_trouble_not_bad_data() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut registry = StandInRegistry::start(&rt);
    let url = registry.url.clone();
    let writer = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, ERP)
        .unwrap();
    let bytes = writer.encode_input(&item()).unwrap();
    let reader = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, CONDMON)
        .unwrap();
    registry.stop(&rt);
    // Known ids still decode without the registry ...
    assert_eq!(reader.decode_input(Stream::Items, &bytes).unwrap(), item());
    // ... a new one cannot be looked up: retry later, never a dead letter.
    let mut unseen = bytes.clone();
    unseen[1..5].copy_from_slice(&77u32.to_be_bytes());
    let err = reader.decode_input(Stream::Items, &unseen).unwrap_err();
    assert!(err.is_external(), "{err}");
    assert!(
        err.to_string().contains("schema registry unavailable"),
        "{err}"
    );
    // Starting against a registry that is down fails loudly.
    assert!(
        SchemaCatalog::bundled()
            .unwrap()
            .with_registry(Registry::new(&url), topic, CONDMON)
            .is_err()
    );
}

#[test]
fn condmon_never_registers_under_the_erps_subjects_and_registers_its_own_as_configured() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = StandInRegistry::start(&rt);
    let (url, db) = (registry.url.clone(), registry.schemas.clone());

    // Centrally managed subjects, none registered yet: condmon refuses to start, naming the
    // first missing subject of its own ...
    let managed = RegistryUse {
        register_inputs: false,
        register_outputs: false,
    };
    let err = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, managed)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not registered under subject `ar."),
        "{err}"
    );
    assert!(db.lock().unwrap().subjects.is_empty(), "nothing registered");

    // ... and by default registers its own subjects, none of the ERP's.
    let condmon = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, CONDMON)
        .unwrap();
    {
        let db = db.lock().unwrap();
        for stream in Stream::all() {
            let subject = format!("{}-value", topic(stream));
            assert_eq!(
                db.subjects.contains_key(&subject),
                !Stream::FROM_OUTSIDE.contains(&stream),
                "{subject}"
            );
        }
    }
    assert_eq!(condmon.current_id(Stream::Items), None);
    let err = condmon.encode_input(&item()).unwrap_err();
    assert!(err.to_string().contains("ar.items-value"), "{err}");

    // Once the ERP registered its schema, condmon finds its id, and managed subjects start.
    let erp = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, ERP)
        .unwrap();
    let bytes = erp.encode_input(&item()).unwrap();
    let managed = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic, managed)
        .unwrap();
    assert_eq!(
        managed.current_id(Stream::Items),
        erp.current_id(Stream::Items)
    );
    assert_eq!(managed.decode_input(Stream::Items, &bytes).unwrap(), item());
}

#[test]
fn a_registry_over_https_with_credentials_and_its_answers_classified() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = StandInRegistry::start(&rt);
    let db = registry.schemas.clone();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::tls::Pki::new(&dir.path().join("pki"));
    let server = pki.issue("registry");
    let port = common::free_port();
    let inner: u16 = registry.url.rsplit(':').next().unwrap().parse().unwrap();
    let _tls = common::tls::stunnel(dir.path(), port, inner, &server, None);
    let https = format!("https://localhost:{port}");
    let ca = std::fs::read(pki.ca()).unwrap();
    let basic = || RegistryAuth::basic("condmon:s3cret").unwrap();

    // The ERP registers its schema; condmon then reads over HTTPS with basic authentication.
    let erp = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&registry.url), topic, ERP)
        .unwrap();
    let bytes = erp.encode_input(&item()).unwrap();
    // An older producer's version, which no reader has seen yet.
    let old_id = Registry::new(&registry.url)
        .register("ar.items-value", &common::item_schema_v1())
        .unwrap();
    let unseen = common::item_written_with_v1(&item(), old_id);
    db.lock().unwrap().authorization = Some("Basic Y29uZG1vbjpzM2NyZXQ=".into());
    let secured = Registry::connect(&https, Some(&ca), Some(basic())).unwrap();
    let condmon = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(secured.clone(), topic, CONDMON)
        .unwrap();
    assert_eq!(condmon.decode_input(Stream::Items, &bytes).unwrap(), item());

    // A certificate from an authority it was not told to trust is refused.
    let mozilla_only = Registry::new(&https);
    let err = mozilla_only.schema(1, "ar.items-value").unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // A bearer token, where the registry wants one.
    db.lock().unwrap().authorization = Some("Bearer t0ken".into());
    let bearer = Registry::connect(
        &https,
        Some(&ca),
        Some(RegistryAuth::Bearer("t0ken".into())),
    )
    .unwrap();
    assert!(bearer.schema(1, "ar.items-value").unwrap().is_some());

    // Wrong credentials are configuration: an error naming the registry and the subject, not
    // bad data and not an outage.
    let reader = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(bearer, topic, CONDMON)
        .unwrap();
    db.lock().unwrap().authorization = Some("Bearer rotated".into());
    let err = reader.decode_input(Stream::Items, &unseen).unwrap_err();
    assert!(matches!(err, CodecError::RegistryDenied(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&https) && message.contains("`ar.items-value`"),
        "{message}"
    );
    assert!(message.contains("HTTP 401"), "{message}");
    db.lock().unwrap().authorization = None;

    // 403 is the same; 408, 429 and 5xx are an outage, retried; the same record then decodes.
    for (status, denied) in [(403, true), (408, false), (429, false), (503, false)] {
        db.lock().unwrap().answer = Some(status);
        let err = reader.decode_input(Stream::Items, &unseen).unwrap_err();
        assert_eq!(
            matches!(err, CodecError::RegistryDenied(_)),
            denied,
            "{status}: {err}"
        );
        assert_eq!(err.is_external(), !denied, "{status}: {err}");
    }
    db.lock().unwrap().answer = None;
    let InputEvent::Item(decoded) = reader.decode_input(Stream::Items, &unseen).unwrap() else {
        panic!("not an item")
    };
    assert_eq!(decoded.item_id, "INV-1");
}
