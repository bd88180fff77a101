//! Schema ids from a Confluent-compatible schema registry.
//!
//! No Confluent Schema Registry can run on this machine (it needs a JVM and Maven Central, or
//! Docker), so these tests talk over real HTTP to a stand-in that implements the two calls
//! condmon makes, with the registry's semantics: `POST /subjects/{subject}/versions` (the same
//! schema gets the same id) and `GET /schemas/ids/{id}` (404 for an unknown id).

mod common;

use common::StandInRegistry;
use condmon::codec::{CodecError, Registry, SchemaCatalog};
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

#[test]
fn ids_come_from_the_registry_and_unknown_ids_are_fetched_from_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = StandInRegistry::start(&rt);
    let (url, db) = (registry.url.clone(), registry.schemas.clone());
    let catalog = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic)
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
    assert_eq!(id, catalog.current_id(Stream::Items));
    assert!(
        id as usize <= Stream::all().count(),
        "a registry id, not the manifest's 1001: {id}"
    );

    // A second instance starting against the same registry gets the same ids ...
    let other = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic)
        .unwrap();
    assert_eq!(other.current_id(Stream::Items), id);
    // ... and a reader that has never seen an id asks the registry for it.
    let reader = SchemaCatalog::bundled().unwrap();
    assert!(matches!(
        reader.decode_input(Stream::Items, &bytes),
        Err(CodecError::UnknownSchemaId(_))
    ));
    let fresh = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic)
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
        .with_registry(Registry::new(&url), topic)
        .unwrap();
    assert_ne!(catalog.current_id(Stream::Items), old_id);
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
        .with_registry(Registry::new(&url), topic)
        .unwrap();
    let bytes = writer.encode_input(&item()).unwrap();
    let reader = SchemaCatalog::bundled()
        .unwrap()
        .with_registry(Registry::new(&url), topic)
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
            .with_registry(Registry::new(&url), topic)
            .is_err()
    );
}
