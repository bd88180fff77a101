//! Avro in the Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro datum)
//! and JSON, both to and from the model.
//!
//! Schema ids come from `schemas/manifest.toml` (see [`SchemaCatalog::load`]) or a registry.
//! Every id a stream has ever had stays readable: a record of the stream's newest schema is read
//! straight into the model (`avro_serde`); one of another schema is decoded with the writer's
//! schema, resolved into the newest and converted through the JSON form (`avro_json`). Outputs
//! are written straight from the model, through the JSON form only when that fails (its error
//! names the field).

mod avro_json;
mod avro_serde;
pub mod evolution;
pub mod limits;
pub mod reference;
mod registry;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::warn;

use crate::model::{InputEvent, OutputEvent, Stream};

pub use avro_json::{avro_to_json, json_to_avro, write_json};
pub use registry::{Registry, RegistryAuth, RegistryError};

const MAGIC: u8 = 0;

/// Why bytes could not become an event. All but [`CodecError::RegistryUnavailable`] are bad
/// data: dead letter, never a retry.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error("message of {0} bytes is too short for the Confluent wire format")]
    TooShort(usize),
    #[error("magic byte {0} is not the Confluent wire format's 0")]
    BadMagic(u8),
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// Not bad data: the registry could not be asked. The record is retried, not refused.
    #[error("{0}")]
    RegistryUnavailable(String),
    /// Not bad data: the registry refused condmon's credentials (401/403). Configuration: the
    /// process stops with this message.
    #[error("{0}")]
    RegistryDenied(String),
    #[error("schema id {id} belongs to stream `{found}`, not `{expected}`")]
    WrongStream {
        id: u32,
        found: &'static str,
        expected: &'static str,
    },
    #[error("avro: {0}")]
    Avro(String),
    #[error("json: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}

impl CodecError {
    /// External trouble (retry later) rather than bad data (dead letter).
    pub fn is_external(&self) -> bool {
        matches!(self, CodecError::RegistryUnavailable(_))
    }
}

/// Problems with the schema files themselves: internal, so the process refuses to start.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    schema: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    stream: Stream,
    id: u32,
    file: String,
}

/// A schema with what reading and writing its records needs, resolved once: its named types,
/// a datum reader and a datum writer. Schemas live as long as the process (a catalog has one
/// per schema version, a registry few more), so they are leaked to lend the reader and writer
/// their `'static` references.
pub struct Compiled {
    pub schema: &'static Schema,
    names: apache_avro::schema::ResolvedSchema<'static>,
    /// The scale of each decimal by path: what a record written at another scale is
    /// rescaled to when this is the reader's schema (see `evolution::rescale`).
    decimal_scales: HashMap<String, u32>,
    /// The symbols of each enum by name: a writer's symbol missing here is read as the enum's
    /// default (see `evolution::unknown_symbols`).
    enum_symbols: HashMap<String, Vec<String>>,
    reader: apache_avro::reader::datum::GenericDatumReader<'static>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.schema.fmt(f)
    }
}

impl Compiled {
    fn new(schema: Schema) -> Result<Arc<Compiled>, String> {
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let names =
            apache_avro::schema::ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| e.to_string())?;
        let decimal_scales = evolution::decimal_scales(schema, names.get_names());
        let enum_symbols = evolution::enum_symbols(schema);
        Ok(Arc::new(Compiled {
            schema,
            names,
            decimal_scales,
            enum_symbols,
            reader,
        }))
    }
}

/// A file of a schema directory, read.
fn read_file(path: &Path) -> Result<String, CatalogError> {
    std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A file of a schema directory that is not what it should be.
fn invalid_file(path: &Path, message: String) -> CatalogError {
    CatalogError::Invalid {
        path: path.display().to_string(),
        message,
    }
}

/// Writer schemas by id, with the stream each belongs to; shared by clones of a catalog.
type SchemaCache = Arc<RwLock<HashMap<u32, (Stream, Arc<Compiled>)>>>;

/// All known schemas by id, and the current (newest) schema per stream.
#[derive(Debug, Clone)]
pub struct SchemaCatalog {
    /// Shared by clones: ids fetched from the registry are cached for every user.
    by_id: SchemaCache,
    current: HashMap<Stream, (Option<u32>, Arc<Compiled>)>,
    registry: Option<Registry>,
    /// Each stream's registry subject (empty without a registry).
    subjects: HashMap<Stream, String>,
    /// Records read with enum symbols this version does not know, by stream (shared by
    /// clones; the metrics follow it).
    unknown_symbols: Arc<std::sync::Mutex<HashMap<Stream, u64>>>,
}

/// Which schemas a client registers (see [`SchemaCatalog::with_registry`]).
#[derive(Debug, Clone, Copy)]
pub struct RegistryUse {
    /// This client produces the streams others write (a feeder, a test acting as the ERP).
    pub register_inputs: bool,
    /// condmon's own streams: its outputs and the repartitioned figures.
    pub register_outputs: bool,
}

impl SchemaCatalog {
    /// Loads `manifest.toml` and the `.avsc` files it names from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CatalogError> {
        let (read, invalid) = (read_file, invalid_file);
        let manifest_path = dir.join("manifest.toml");
        let manifest: Manifest = toml::from_str(&read(&manifest_path)?)
            .map_err(|e| invalid(&manifest_path, e.to_string()))?;
        let mut by_id = HashMap::new();
        let mut current: HashMap<Stream, (Option<u32>, Arc<Compiled>)> = HashMap::new();
        for entry in manifest.schema {
            let path = dir.join(&entry.file);
            let schema = Compiled::new(
                Schema::parse_str(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))?,
            )
            .map_err(|e| invalid(&path, e))?;
            if by_id
                .insert(entry.id, (entry.stream, schema.clone()))
                .is_some()
            {
                return Err(invalid(
                    &manifest_path,
                    format!("schema id {} is used twice", entry.id),
                ));
            }
            if current
                .get(&entry.stream)
                .is_none_or(|(id, _)| *id < Some(entry.id))
            {
                current.insert(entry.stream, (Some(entry.id), schema));
            }
        }
        for stream in Stream::all() {
            if !current.contains_key(&stream) {
                return Err(invalid(
                    &manifest_path,
                    format!("no schema for stream `{}`", stream.as_str()),
                ));
            }
        }
        Ok(SchemaCatalog {
            by_id: Arc::new(RwLock::new(by_id)),
            current,
            registry: None,
            subjects: HashMap::new(),
            unknown_symbols: Default::default(),
        })
    }

    /// The catalog shipped in this repository's `schemas/` (for tests, replay and tools).
    pub fn bundled() -> Result<Self, CatalogError> {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas"))
    }

    /// Switches to the registry's ids, with subjects `<topic>-value`: from then on writes
    /// with the registry's id and looks up unknown ids there. The manifest's ids are not used
    /// any more. The schemas of what others write (the ERP's and the tools' streams) are only
    /// looked up, never registered, unless `use_.register_inputs` says this client is their
    /// producer: those subjects are their writers', and a reader schema registered there
    /// would become their latest version. condmon's own (outputs, the repartitioned figures)
    /// are registered when `use_.register_outputs`, else they must be registered already.
    pub fn with_registry(
        self,
        registry: Registry,
        topic_of: impl Fn(Stream) -> String,
        use_: RegistryUse,
    ) -> Result<Self, RegistryError> {
        let mut by_id = HashMap::new();
        let mut current = HashMap::new();
        let mut subjects = HashMap::new();
        for (stream, (_, schema)) in &self.current {
            let subject = format!("{}-value", topic_of(*stream));
            // The full schema, logical types included (the canonical form would drop them).
            let text = serde_json::to_string(schema.schema).expect("schemas serialize");
            let written_by_others = Stream::FROM_OUTSIDE.contains(stream);
            let register = if written_by_others {
                use_.register_inputs
            } else {
                use_.register_outputs
            };
            let id = if register {
                Some(registry.register(&subject, &text)?)
            } else {
                registry.lookup(&subject, &text)?
            };
            if id.is_none() && !written_by_others {
                return Err(RegistryError::Setup(format!(
                    "the schema of `{}` is not registered under subject `{subject}`: register \
                     it, or let condmon do it (schema_registry_register_outputs = true)",
                    stream.as_str()
                )));
            }
            if let Some(id) = id {
                by_id.insert(id, (*stream, schema.clone()));
            }
            current.insert(*stream, (id, schema.clone()));
            subjects.insert(*stream, subject);
        }
        Ok(SchemaCatalog {
            by_id: Arc::new(RwLock::new(by_id)),
            current,
            registry: Some(registry),
            subjects,
            unknown_symbols: Default::default(),
        })
    }

    /// How many records of each stream were read with enum symbols this version does not
    /// know (read as documented: see "Symbols a newer producer adds" in the README).
    pub fn unknown_symbols_read(&self) -> HashMap<Stream, u64> {
        self.unknown_symbols
            .lock()
            .expect("unknown symbols lock")
            .clone()
    }

    /// The id this catalog writes `stream` with; `None` for a stream others write whose
    /// subject does not have condmon's schema (condmon never writes those).
    pub fn current_id(&self, stream: Stream) -> Option<u32> {
        self.current[&stream].0
    }

    /// The writer schema of `id`, from the cache or else the registry.
    fn schema(&self, id: u32, stream: Stream) -> Result<(Stream, Arc<Compiled>), CodecError> {
        if let Some(found) = self.by_id.read().expect("schema cache").get(&id) {
            return Ok(found.clone());
        }
        let Some(registry) = &self.registry else {
            return Err(CodecError::UnknownSchemaId(id));
        };
        let text = registry
            .schema(id, &self.subjects[&stream])
            .map_err(|e| match e {
                RegistryError::Unavailable { .. } => CodecError::RegistryUnavailable(e.to_string()),
                RegistryError::Denied { .. } => CodecError::RegistryDenied(e.to_string()),
                RegistryError::Refused { .. } | RegistryError::Setup(_) => {
                    CodecError::Avro(e.to_string())
                }
            })?
            .ok_or(CodecError::UnknownSchemaId(id))?;
        let schema = Schema::parse_str(&text)
            .map_err(|e| e.to_string())
            .and_then(Compiled::new)
            .map_err(|e| CodecError::Avro(format!("schema {id} from the registry: {e}")))?;
        // The id belongs to the topic it came on: the registry's subjects are per topic.
        let entry = (stream, schema);
        self.by_id
            .write()
            .expect("schema cache")
            .insert(id, entry.clone());
        Ok(entry)
    }

    /// Encodes the JSON form of an event of `stream` into the wire format.
    pub fn encode_json(
        &self,
        stream: Stream,
        json: &serde_json::Value,
    ) -> Result<Vec<u8>, CodecError> {
        let (id, compiled) = &self.current[&stream];
        let id = id.ok_or_else(|| {
            CodecError::Shape(format!(
                "no id to write `{}` with: its subject `{}` does not have this schema",
                stream.as_str(),
                self.subjects.get(&stream).map_or("", String::as_str)
            ))
        })?;
        let mut out = Vec::with_capacity(256);
        out.push(MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        write_json(compiled.schema, json, stream.as_str(), &mut out)?;
        Ok(out)
    }

    /// Decodes wire-format bytes expected on `stream` into the JSON form of its newest schema.
    pub fn decode_json(
        &self,
        stream: Stream,
        bytes: &[u8],
    ) -> Result<serde_json::Value, CodecError> {
        let (id, writer, datum) = self.frame(stream, bytes)?;
        self.resolve_to_json(stream, id, &writer, datum)
    }

    /// The schema id, the writer's schema and the datum of a wire-format record of `stream`,
    /// its bounds checked.
    fn frame<'b>(
        &self,
        stream: Stream,
        bytes: &'b [u8],
    ) -> Result<(u32, Arc<Compiled>, &'b [u8]), CodecError> {
        if bytes.len() < 5 {
            return Err(CodecError::TooShort(bytes.len()));
        }
        if bytes[0] != MAGIC {
            return Err(CodecError::BadMagic(bytes[0]));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let (found, writer) = self.schema(id, stream)?;
        if found != stream {
            return Err(CodecError::WrongStream {
                id,
                found: found.as_str(),
                expected: stream.as_str(),
            });
        }
        let datum = &bytes[5..];
        // Bounds, truncation and trailing bytes, before the decoder reserves anything.
        limits::check(writer.schema, writer.names.get_names(), datum).map_err(CodecError::Avro)?;
        Ok((id, writer, datum))
    }

    /// A datum written with schema `id` (`writer`), read into the JSON form of the stream's
    /// newest schema through Avro's resolution.
    fn resolve_to_json(
        &self,
        stream: Stream,
        id: u32,
        writer: &Compiled,
        datum: &[u8],
    ) -> Result<serde_json::Value, CodecError> {
        let (current, reader) = &self.current[&stream];
        let mut rest = datum;
        let value = writer
            .reader
            .read_value(&mut rest)
            .map_err(|e| CodecError::Avro(e.to_string()))?;
        let value = if Some(id) == *current {
            value
        } else {
            let mut value = value;
            // Decimals at the reader's scale first: resolution would keep their unscaled bytes.
            evolution::rescale(
                writer.schema,
                writer.names.get_names(),
                &mut value,
                &reader.decimal_scales,
                "",
            )?;
            let mut unknown = Vec::new();
            evolution::unknown_symbols(
                writer.schema,
                writer.names.get_names(),
                &mut value,
                &reader.enum_symbols,
                &mut unknown,
            );
            if !unknown.is_empty() {
                // A command is applied whole or not at all: one it cannot fully understand is
                // answered REJECTED (its kind read as UNKNOWN), never applied in part.
                if stream == Stream::ActionCommands
                    && let Value::Record(fields) = &mut value
                    && let Some((_, kind)) = fields.iter_mut().find(|(name, _)| name == "kind")
                {
                    *kind = Value::Enum(0, "UNKNOWN".into());
                }
                warn!(
                    stream = stream.as_str(),
                    schema_id = id,
                    symbols = ?unknown,
                    "Enum symbols this version does not know, read as documented."
                );
                *self
                    .unknown_symbols
                    .lock()
                    .expect("unknown symbols lock")
                    .entry(stream)
                    .or_default() += 1;
            }
            widen_decimals(&mut value);
            value
                .resolve(reader.schema)
                .map_err(|e| CodecError::Avro(e.to_string()))?
        };
        avro_to_json(reader.schema, &value, stream.as_str())
    }

    /// Decodes wire-format bytes expected on `stream` into its event. A record written with
    /// the newest schema (the common case) is read straight into the model; one written with
    /// another goes through Avro's resolution and the JSON form.
    pub fn decode_input(&self, stream: Stream, bytes: &[u8]) -> Result<InputEvent, CodecError> {
        let (id, writer, datum) = self.frame(stream, bytes)?;
        if self.current[&stream].0 == Some(id) {
            return input_from_avro(stream, writer.schema, datum);
        }
        input_from_json(stream, self.resolve_to_json(stream, id, &writer, datum)?)
    }

    /// Encodes an output event straight from the model; should that fail (a field out of the
    /// schema's order, a value the schema cannot hold), through its JSON form, which says
    /// precisely what does not fit.
    pub fn encode_output(&self, event: &OutputEvent) -> Result<Vec<u8>, CodecError> {
        let stream = event.stream();
        if let (Some(id), compiled) = &self.current[&stream] {
            let mut out = Vec::with_capacity(256);
            out.push(MAGIC);
            out.extend_from_slice(&id.to_be_bytes());
            if avro_serde::to_avro(compiled.schema, &Output(event), &mut out).is_ok() {
                return Ok(out);
            }
        }
        self.encode_json(stream, &output_to_json(event))
    }

    pub fn decode_output(&self, stream: Stream, bytes: &[u8]) -> Result<OutputEvent, CodecError> {
        let json = self.decode_json(stream, bytes)?;
        output_from_json(stream, json)
    }

    pub fn encode_input(&self, event: &InputEvent) -> Result<Vec<u8>, CodecError> {
        self.encode_json(event.stream(), &input_to_json(event))
    }
}

/// apache-avro refuses to resolve a decimal whose byte form is shorter than its precision
/// could need, though it is the same number. Sign-extending every decimal to 16 bytes (room for
/// 38 digits, more than `rust_decimal` holds) keeps the value and satisfies it.
fn widen_decimals(value: &mut apache_avro::types::Value) {
    use apache_avro::types::Value;
    match value {
        Value::Decimal(d) => {
            if let Ok(bytes) = Vec::<u8>::try_from(&*d)
                && bytes.len() < 16
            {
                let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                    0xFF
                } else {
                    0x00
                };
                let mut wide = vec![fill; 16 - bytes.len()];
                wide.extend_from_slice(&bytes);
                *d = apache_avro::Decimal::from(wide);
            }
        }
        Value::Record(fields) => fields.iter_mut().for_each(|(_, v)| widen_decimals(v)),
        Value::Array(items) => items.iter_mut().for_each(widen_decimals),
        Value::Map(entries) => entries.values_mut().for_each(widen_decimals),
        Value::Union(_, inner) => widen_decimals(inner),
        _ => {}
    }
}

fn from_json<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, CodecError> {
    serde_json::from_value(json).map_err(|e| CodecError::Json(e.to_string()))
}

/// An input event of `stream` read from a datum of its newest schema.
fn input_from_avro(
    stream: Stream,
    schema: &Schema,
    datum: &[u8],
) -> Result<InputEvent, CodecError> {
    fn read<T: DeserializeOwned>(schema: &Schema, datum: &[u8]) -> Result<T, CodecError> {
        avro_serde::from_avro(schema, datum).map_err(|e| CodecError::Avro(e.to_string()))
    }
    Ok(match stream {
        Stream::Items => InputEvent::Item(read(schema, datum)?),
        Stream::Payments => InputEvent::Payment(read(schema, datum)?),
        Stream::Aging => InputEvent::Aging(read(schema, datum)?),
        Stream::Customers => InputEvent::Customer(read(schema, datum)?),
        Stream::History => InputEvent::History(read(schema, datum)?),
        Stream::CreditAgency => InputEvent::CreditAgency(read(schema, datum)?),
        Stream::ChildFigures => InputEvent::ChildFigures(read(schema, datum)?),
        Stream::FxRates => InputEvent::FxRate(read(schema, datum)?),
        Stream::ActionCommands => InputEvent::Command(read(schema, datum)?),
        Stream::Conversations => InputEvent::Conversation(read(schema, datum)?),
        other => {
            return Err(CodecError::Shape(format!(
                "`{}` is not an input stream",
                other.as_str()
            )));
        }
    })
}

/// The JSON form of an input event of `stream`.
pub fn input_from_json(stream: Stream, json: serde_json::Value) -> Result<InputEvent, CodecError> {
    Ok(match stream {
        Stream::Items => InputEvent::Item(from_json(json)?),
        Stream::Payments => InputEvent::Payment(from_json(json)?),
        Stream::Aging => InputEvent::Aging(from_json(json)?),
        Stream::Customers => InputEvent::Customer(from_json(json)?),
        Stream::History => InputEvent::History(from_json(json)?),
        Stream::CreditAgency => InputEvent::CreditAgency(from_json(json)?),
        Stream::ChildFigures => InputEvent::ChildFigures(from_json(json)?),
        Stream::FxRates => InputEvent::FxRate(from_json(json)?),
        Stream::ActionCommands => InputEvent::Command(from_json(json)?),
        Stream::Conversations => InputEvent::Conversation(from_json(json)?),
        other => {
            return Err(CodecError::Shape(format!(
                "`{}` is not an input stream",
                other.as_str()
            )));
        }
    })
}

pub fn input_to_json(event: &InputEvent) -> serde_json::Value {
    let json = match event {
        InputEvent::Item(e) => serde_json::to_value(e),
        InputEvent::Payment(e) => serde_json::to_value(e),
        InputEvent::Aging(e) => serde_json::to_value(e),
        InputEvent::Customer(e) => serde_json::to_value(e),
        InputEvent::History(e) => serde_json::to_value(e),
        InputEvent::CreditAgency(e) => serde_json::to_value(e),
        InputEvent::ChildFigures(e) => serde_json::to_value(e),
        InputEvent::FxRate(e) => serde_json::to_value(e),
        InputEvent::Command(e) => serde_json::to_value(e),
        InputEvent::Conversation(e) => serde_json::to_value(e),
    };
    json.expect("model types always serialize")
}

pub fn output_from_json(
    stream: Stream,
    json: serde_json::Value,
) -> Result<OutputEvent, CodecError> {
    Ok(match stream {
        Stream::Actions => OutputEvent::Action(from_json(json)?),
        Stream::Escalations => OutputEvent::Escalation(from_json(json)?),
        Stream::Conditions => OutputEvent::Condition(from_json(json)?),
        Stream::RiskScores => OutputEvent::RiskScore(from_json(json)?),
        Stream::ChildFigures => OutputEvent::ChildFigures {
            event_id: String::new(),
            figures: from_json(json)?,
        },
        Stream::CommandResults => OutputEvent::CommandResult(from_json(json)?),
        Stream::Notifications => OutputEvent::Notification(from_json(json)?),
        Stream::Correspondence => OutputEvent::Correspondence(from_json(json)?),
        Stream::Requests => OutputEvent::Request(from_json(json)?),
        Stream::PromiseStatus => OutputEvent::PromiseStatus(from_json(json)?),
        Stream::DunningDecisions => OutputEvent::DunningDecision(from_json(json)?),
        other => {
            return Err(CodecError::Shape(format!(
                "`{}` is not an output stream",
                other.as_str()
            )));
        }
    })
}

pub fn output_to_json(event: &OutputEvent) -> serde_json::Value {
    Output(event)
        .serialize(serde_json::value::Serializer)
        .expect("model types always serialize")
}

/// An output event as its payload's serde form (the event itself, or a child's figures).
struct Output<'a>(&'a OutputEvent);

impl serde::Serialize for Output<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            OutputEvent::Action(e) => e.serialize(s),
            OutputEvent::Escalation(e) => e.serialize(s),
            OutputEvent::Condition(e) => e.serialize(s),
            OutputEvent::RiskScore(e) => e.serialize(s),
            OutputEvent::ChildFigures { figures, .. } => figures.serialize(s),
            OutputEvent::CommandResult(e) => e.serialize(s),
            OutputEvent::Notification(e) => e.serialize(s),
            OutputEvent::Correspondence(e) => e.serialize(s),
            OutputEvent::Request(e) => e.serialize(s),
            OutputEvent::PromiseStatus(e) => e.serialize(s),
            OutputEvent::DunningDecision(e) => e.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ItemChange, ItemType};

    fn item() -> InputEvent {
        InputEvent::Item(ItemChange {
            set_id: "SHARE".into(),
            business_unit: "US001".into(),
            customer_id: "C1".into(),
            item_id: "INV-1".into(),
            item_line: 2,
            item_type: ItemType::DebitMemo,
            original_amount: "1234.5678".parse().unwrap(),
            open_amount: "0.01".parse().unwrap(),
            currency: "EUR".into(),
            accounting_date: "1969-12-31".parse().unwrap(),
            due_date: "2026-02-28".parse().unwrap(),
            entry_type: "DM".into(),
            entry_reason: Some("FRT".into()),
            disputed_amount: "0".parse().unwrap(),
            ar_specialist: None,
            collector: Some("JDOE".into()),
            origin_item_id: None,
            origin_item_line: None,
            origin_payment_id: None,
        })
    }

    #[test]
    fn input_events_round_trip_through_the_wire_format() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let bytes = catalog.encode_input(&item()).unwrap();
        assert_eq!(bytes[0], 0);
        assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), 1021);
        assert_eq!(catalog.decode_input(Stream::Items, &bytes).unwrap(), item());
    }

    #[test]
    fn broken_bytes_are_named_precisely() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let good = catalog.encode_input(&item()).unwrap();
        let err =
            |bytes: &[u8], stream| catalog.decode_input(stream, bytes).unwrap_err().to_string();
        assert_eq!(
            err(&[0, 0], Stream::Items),
            "message of 2 bytes is too short for the Confluent wire format"
        );
        assert_eq!(
            err(b"{\"json\": 1}", Stream::Items),
            "magic byte 123 is not the Confluent wire format's 0"
        );
        assert_eq!(
            err(&[0, 0, 0, 0, 7, 1], Stream::Items),
            "unknown schema id 7"
        );
        assert_eq!(
            err(&good, Stream::Payments),
            "schema id 1021 belongs to stream `items`, not `payments`"
        );
        assert!(err(&good[..good.len() - 3], Stream::Items).starts_with("avro:"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            err(&trailing, Stream::Items),
            "avro: 1 trailing bytes after the datum"
        );
    }

    #[test]
    fn records_written_with_an_older_schema_are_read_into_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        for entry in std::fs::read_dir(&bundled).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        // Version 1 of the item schema had no collector.
        let current = std::fs::read_to_string(bundled.join("item_change.avsc")).unwrap();
        let mut v1: serde_json::Value = serde_json::from_str(&current).unwrap();
        v1["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "collector");
        std::fs::write(dir.path().join("item_change_v1.avsc"), v1.to_string()).unwrap();
        let manifest = std::fs::read_to_string(bundled.join("manifest.toml")).unwrap();
        std::fs::write(
            dir.path().join("manifest.toml"),
            format!("{manifest}\n[[schema]]\nstream = \"items\"\nid = 901\nfile = \"item_change_v1.avsc\"\n"),
        )
        .unwrap();
        let catalog = SchemaCatalog::load(dir.path()).unwrap();
        assert_eq!(
            catalog.current_id(Stream::Items),
            Some(1021),
            "the highest id is current"
        );

        let mut json = input_to_json(&item());
        json.as_object_mut().unwrap().remove("collector");
        let v1_schema = Schema::parse_str(&v1.to_string()).unwrap();
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&v1_schema)
            .build()
            .unwrap()
            .write_value_to_vec(json_to_avro(&v1_schema, &json, "items").unwrap())
            .unwrap();
        let mut bytes = vec![0, 0, 0, 3, 0x85]; // id 901
        bytes.extend(datum);
        let InputEvent::Item(decoded) = catalog.decode_input(Stream::Items, &bytes).unwrap() else {
            panic!()
        };
        assert_eq!(decoded.collector, None, "the new field takes its default");
        assert_eq!(decoded.original_amount, "1234.5678".parse().unwrap());
    }

    /// The bundled schemas plus other producers' versions of a stream (`stream`, `id`,
    /// schema), with lower ids than ours so that ours stays the reader.
    fn catalog_with(extra: &[(&str, u32, &serde_json::Value)]) -> SchemaCatalog {
        let dir = tempfile::tempdir().unwrap();
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        for entry in std::fs::read_dir(&bundled).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let mut manifest = std::fs::read_to_string(bundled.join("manifest.toml")).unwrap();
        for (stream, id, schema) in extra {
            let file = format!("other_{id}.avsc");
            std::fs::write(dir.path().join(&file), schema.to_string()).unwrap();
            manifest.push_str(&format!(
                "\n[[schema]]\nstream = \"{stream}\"\nid = {id}\nfile = \"{file}\"\n"
            ));
        }
        std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
        SchemaCatalog::load(dir.path()).unwrap()
    }

    /// A bundled schema's JSON, to derive another producer's version from.
    fn bundled_schema(file: &str) -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(file);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// `json` written with another producer's `schema` under `id`, in the wire format.
    fn written_with(schema: &serde_json::Value, id: u32, json: &serde_json::Value) -> Vec<u8> {
        let schema = Schema::parse_str(&schema.to_string()).unwrap();
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(json_to_avro(&schema, json, "test").unwrap())
            .unwrap();
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend(datum);
        bytes
    }

    /// Each record line of `files` (replay format or golden output): its stream and value.
    fn stream_lines(files: &[&str]) -> Vec<(Stream, serde_json::Value)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        files
            .iter()
            .flat_map(|file| {
                let text = std::fs::read_to_string(root.join(file)).unwrap();
                text.lines()
                    .filter_map(|line| {
                        let mut line: serde_json::Value = serde_json::from_str(line).unwrap();
                        let stream =
                            Stream::all().find(|t| Some(t.as_str()) == line["stream"].as_str())?;
                        Some((stream, line["value"].take()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The direct encoder writes exactly the bytes of the Avro-value path it replaced
    /// (`json_to_avro` and apache-avro's writer), for every record of the sample replay files
    /// and every output of the golden files: the wire format did not change.
    #[test]
    fn the_direct_encoder_writes_what_the_avro_value_path_wrote() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut compared = 0;
        for (stream, value) in stream_lines(&[
            "topology/sample/ledger.ndjson",
            "topology/sample/action-plan.ndjson",
            "topology/sample/conversations.ndjson",
            "tests/golden/sample-ledger.out.ndjson",
            "tests/golden/action-plan.out.ndjson",
            "tests/golden/conversations.out.ndjson",
        ]) {
            let (_, compiled) = &catalog.current[&stream];
            // Replay files may leave out what has a default: the model's full JSON form.
            let json = match input_from_json(stream, value.clone()) {
                Ok(event) => input_to_json(&event),
                Err(_) => value,
            };
            let value = json_to_avro(compiled.schema, &json, "test").unwrap();
            let expected = apache_avro::writer::datum::GenericDatumWriter::builder(compiled.schema)
                .build()
                .unwrap()
                .write_value_to_vec(value)
                .unwrap();
            let mut direct = Vec::new();
            write_json(compiled.schema, &json, "test", &mut direct).unwrap();
            assert_eq!(direct, expected, "{json}");
            compared += 1;
        }
        assert!(compared > 500, "{compared}");
        // Errors still name the field.
        let mut bad = serde_json::from_str::<serde_json::Value>(
            std::fs::read_to_string(root.join("topology/sample/ledger.ndjson"))
                .unwrap()
                .lines()
                .find(|l| l.contains("\"stream\":\"items\""))
                .unwrap(),
        )
        .unwrap()["value"]
            .clone();
        bad["open_amount"] = "1.234567".into();
        let err = catalog
            .encode_json(Stream::Items, &bad)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "items.open_amount: 1.234567 has more than 4 decimal places"
        );
    }

    /// Every output of the golden files is written straight from the model, without falling
    /// back to its JSON form, into the bytes the JSON form gives.
    #[test]
    fn outputs_are_written_straight_from_the_model() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let mut streams = std::collections::HashSet::new();
        for (stream, value) in stream_lines(&[
            "tests/golden/sample-ledger.out.ndjson",
            "tests/golden/action-plan.out.ndjson",
            "tests/golden/conversations.out.ndjson",
        ]) {
            let by_json = catalog.encode_json(stream, &value).unwrap();
            let event = catalog.decode_output(stream, &by_json).unwrap();
            let (_, compiled) = &catalog.current[&stream];
            let mut direct = by_json[..5].to_vec();
            avro_serde::to_avro(compiled.schema, &Output(&event), &mut direct)
                .unwrap_or_else(|e| panic!("{}: {e}", stream.as_str()));
            assert_eq!(direct, by_json, "{value}");
            assert_eq!(catalog.encode_output(&event).unwrap(), by_json);
            streams.insert(stream);
        }
        assert!(streams.len() >= 8, "{streams:?}");

        // A value the schema cannot hold falls back to the JSON form, whose error names it.
        let (stream, value) = stream_lines(&["tests/golden/action-plan.out.ndjson"])
            .into_iter()
            .find(|(s, _)| *s == Stream::Actions)
            .unwrap();
        let bytes = catalog.encode_json(stream, &value).unwrap();
        let OutputEvent::Action(mut action) = catalog.decode_output(stream, &bytes).unwrap() else {
            panic!("not an action")
        };
        action.evidence.past_due_amount = "1.23456".parse().unwrap();
        let err = catalog
            .encode_output(&OutputEvent::Action(action))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "actions.evidence.past_due_amount: 1.23456 has more than 4 decimal places"
        );
    }

    /// A record of the newest schema read straight into the model gives exactly the event
    /// the resolution and JSON path gives, for every record of the sample replay files.
    #[test]
    fn the_direct_decoder_reads_what_the_json_path_reads() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let mut compared = 0;
        for (stream, value) in stream_lines(&[
            "topology/sample/ledger.ndjson",
            "topology/sample/action-plan.ndjson",
            "topology/sample/conversations.ndjson",
        ]) {
            let event = input_from_json(stream, value).unwrap();
            let bytes = catalog.encode_input(&event).unwrap();
            let direct = catalog.decode_input(stream, &bytes).unwrap();
            let by_json =
                input_from_json(stream, catalog.decode_json(stream, &bytes).unwrap()).unwrap();
            assert_eq!(direct, by_json, "{event:?}");
            assert_eq!(direct, event);
            compared += 1;
        }
        assert!(compared > 80, "{compared}");
        // Truncated or padded data is refused, not misread.
        let bytes = catalog.encode_input(&item()).unwrap();
        assert!(
            catalog
                .decode_input(Stream::Items, &bytes[..bytes.len() - 1])
                .is_err()
        );
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(catalog.decode_input(Stream::Items, &padded).is_err());
    }

    /// A producer whose schema holds amounts at another scale: read exactly at ours (never off
    /// by a power of ten), or refused with the reason when ours cannot hold the value.
    #[test]
    fn decimals_written_at_another_scale_are_read_exactly_or_refused() {
        let at_scale = |scale: u64| {
            let mut other = bundled_schema("item_change_v2.avsc");
            for field in other["fields"].as_array_mut().unwrap() {
                if field["type"]["logicalType"] == "decimal" {
                    field["type"]["scale"] = serde_json::json!(scale);
                }
            }
            other
        };
        let (two, six) = (at_scale(2), at_scale(6));
        let catalog = catalog_with(&[("items", 902, &two), ("items", 903, &six)]);
        let InputEvent::Item(mut item) = item() else {
            panic!()
        };
        item.original_amount = "1234.56".parse().unwrap();
        item.open_amount = "0.01".parse().unwrap();
        let event = input_to_json(&InputEvent::Item(item.clone()));
        let InputEvent::Item(read) = catalog
            .decode_input(Stream::Items, &written_with(&two, 902, &event))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            read.original_amount,
            "1234.56".parse().unwrap(),
            "not 12.3456"
        );
        assert_eq!(read.open_amount, "0.01".parse().unwrap());
        // Six places that ours (four) holds: exact.
        let InputEvent::Item(read) = catalog
            .decode_input(Stream::Items, &written_with(&six, 903, &event))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(read.original_amount, "1234.56".parse().unwrap());
        // Six places that ours cannot hold: refused, not rounded.
        item.original_amount = "1.234567".parse().unwrap();
        let err = catalog
            .decode_input(
                Stream::Items,
                &written_with(&six, 903, &input_to_json(&InputEvent::Item(item))),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("more than 4 decimal places") && err.contains("written at scale 6"),
            "{err}"
        );
    }

    /// A newer producer added symbols to our enums: each record is read as the schemas
    /// document (an item type by its amount's sign, a payment status as IN_PROCESS, a command
    /// as UNKNOWN whatever field holds the symbol), never refused.
    #[test]
    fn symbols_a_newer_producer_added_are_read_as_documented() {
        let with_symbol = |file: &str, enum_name: &str, symbol: &str| {
            let mut schema = bundled_schema(file);
            let text = schema.to_string();
            let needle = format!("\"name\":\"{enum_name}\"");
            assert!(text.contains(&needle), "{enum_name} in {file}");
            fn add(value: &mut serde_json::Value, enum_name: &str, symbol: &str) {
                match value {
                    serde_json::Value::Object(map) => {
                        if map.get("type").and_then(|t| t.as_str()) == Some("enum")
                            && map.get("name").and_then(|n| n.as_str()) == Some(enum_name)
                        {
                            map.get_mut("symbols")
                                .unwrap()
                                .as_array_mut()
                                .unwrap()
                                .push(symbol.into());
                        }
                        map.values_mut().for_each(|v| add(v, enum_name, symbol));
                    }
                    serde_json::Value::Array(items) => {
                        items.iter_mut().for_each(|v| add(v, enum_name, symbol))
                    }
                    _ => {}
                }
            }
            add(&mut schema, enum_name, symbol);
            schema
        };
        let items = with_symbol("item_change_v3.avsc", "ItemType", "FINANCE_CHARGE");
        let payments = with_symbol("payment_change_v3.avsc", "PaymentStatus", "REVERSED");
        let commands = with_symbol("action_command_v2.avsc", "OwnerType", "TREASURER");
        let kinds = with_symbol("action_command_v2.avsc", "CommandKind", "SPLIT");
        let catalog = catalog_with(&[
            ("items", 904, &items),
            ("payments", 905, &payments),
            ("action-commands", 906, &commands),
            ("action-commands", 907, &kinds),
        ]);

        let mut json = input_to_json(&item());
        json["item_type"] = "FINANCE_CHARGE".into();
        let read = |stream, bytes: Vec<u8>| catalog.decode_input(stream, &bytes).unwrap();
        let InputEvent::Item(debit) = read(Stream::Items, written_with(&items, 904, &json)) else {
            panic!()
        };
        assert_eq!(debit.item_type, ItemType::DebitMemo);
        json["open_amount"] = "-12.50".into();
        json["original_amount"] = "-12.50".into();
        let InputEvent::Item(credit) = read(Stream::Items, written_with(&items, 904, &json)) else {
            panic!()
        };
        assert_eq!(credit.item_type, ItemType::CreditMemo);
        assert_eq!(credit.open_amount, "-12.50".parse().unwrap());

        let payment = crate::model::PaymentChange {
            set_id: "SHARE".into(),
            business_unit: "US001".into(),
            customer_id: "C1".into(),
            payment_id: "PAY-1".into(),
            status: crate::model::PaymentStatus::Applied,
            amount: "100".parse().unwrap(),
            currency: "USD".into(),
            payment_date: "2026-02-01".parse().unwrap(),
            applications: vec![],
        };
        let mut json = input_to_json(&InputEvent::Payment(payment));
        json["status"] = "REVERSED".into();
        let InputEvent::Payment(read_payment) =
            read(Stream::Payments, written_with(&payments, 905, &json))
        else {
            panic!()
        };
        assert_eq!(read_payment.status, crate::model::PaymentStatus::InProcess);

        let mut command = crate::model::ActionCommand::new(
            "CMD-1",
            &crate::model::CustomerKey::new("SHARE", "C1"),
            "JDOE",
            crate::model::CommandKind::Reassign,
            &["A-1"],
        );
        command.owner = Some("MSMITH".into());
        let mut json = input_to_json(&InputEvent::Command(command));
        json["owner_type"] = "TREASURER".into();
        let InputEvent::Command(read_command) =
            read(Stream::ActionCommands, written_with(&commands, 906, &json))
        else {
            panic!()
        };
        assert_eq!(read_command.kind, crate::model::CommandKind::Unknown);
        assert_eq!(read_command.command_id, "CMD-1", "still answerable");
        json["owner_type"] = serde_json::Value::Null;
        json["kind"] = "SPLIT".into();
        let InputEvent::Command(read_command) =
            read(Stream::ActionCommands, written_with(&kinds, 907, &json))
        else {
            panic!()
        };
        assert_eq!(read_command.kind, crate::model::CommandKind::Unknown);
        // Each record read so is counted, by stream (the metric follows these counts).
        let counted = catalog.unknown_symbols_read();
        assert_eq!(counted[&Stream::Items], 2);
        assert_eq!(counted[&Stream::Payments], 1);
        assert_eq!(counted[&Stream::ActionCommands], 2);
        // Its answer goes out with the kind UNKNOWN.
        let answer = OutputEvent::CommandResult(crate::model::CommandResultEvent {
            event_id: "E1".into(),
            command_id: "CMD-1".into(),
            set_id: "SHARE".into(),
            customer_id: "C1".into(),
            kind: crate::model::CommandKind::Unknown,
            issued_by: "JDOE".into(),
            accepted: false,
            reasons: vec!["unknown".into()],
            action_ids: vec!["A-1".into()],
            business_date: "2026-02-01".parse().unwrap(),
        });
        let bytes = catalog.encode_output(&answer).unwrap();
        assert_eq!(
            catalog
                .decode_output(Stream::CommandResults, &bytes)
                .unwrap(),
            answer
        );
    }

    /// Every new stream's nested records (items of a promise, of a call action) survive the
    /// wire format: the JSON bridge only sees the shapes Avro gives it.
    #[test]
    fn conversations_and_promise_events_round_trip_through_the_wire_format() {
        let catalog = SchemaCatalog::bundled().unwrap();
        let conversation: serde_json::Value = serde_json::json!({
            "set_id": "SHARE", "customer_id": "C1", "conversation_id": "CV-1",
            "business_unit": "US001", "user": "JDOE", "conversation_date": "2026-07-01",
            "contact": "AP", "keywords": ["promise"], "description": null,
            "follow_up": {"action_code": null, "owner": "JDOE", "date": "2026-07-03", "done": false},
            "review_date": "2026-07-08", "reviewed": false, "supervisor_review": true,
            "supervisor": "CMGR", "references": [{"item_id": "I1", "item_line": 0}],
            "promise": {"date": "2026-07-06", "amount": "800.5", "currency": "USD",
                        "items": [{"item_id": "I2", "item_line": 1}], "reviewed": false,
                        "broken_reviewed": false},
            "call_actions": [{"id": "1", "kind": "PARTIAL_DISPUTE",
                              "item": {"item_id": "I3", "item_line": 0}, "amount": "120",
                              "owner": null, "date": null, "notes": null, "site": null,
                              "update_customer_profile": null}],
            "deleted": false
        });
        let event = input_from_json(Stream::Conversations, conversation).unwrap();
        let bytes = catalog.encode_input(&event).unwrap();
        assert_eq!(
            catalog.decode_input(Stream::Conversations, &bytes).unwrap(),
            event
        );
        let command = InputEvent::Command(crate::model::ActionCommand::new(
            "C1",
            &crate::model::CustomerKey::new("SHARE", "C1"),
            "JDOE",
            crate::model::CommandKind::Reassign,
            &["A-1", "A-2"],
        ));
        let bytes = catalog.encode_input(&command).unwrap();
        assert_eq!(
            catalog
                .decode_input(Stream::ActionCommands, &bytes)
                .unwrap(),
            command
        );
    }

    #[test]
    fn a_manifest_without_a_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.toml"), "schema = []\n").unwrap();
        let err = SchemaCatalog::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no schema for stream `items`"), "{err}");
    }
}
