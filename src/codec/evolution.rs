//! Schema evolution: what reading records written with an older (or another producer's)
//! schema needs beyond Avro's resolution, and the check that the schemas in `schemas/` can
//! each read what the one before them wrote (`condmon schemas check`).

use std::collections::HashMap;
use std::path::Path;

use apache_avro::Schema;
use apache_avro::schema::NamesRef;
use apache_avro::types::Value;

use super::avro_json::{decimal_from_bytes, decimal_to_bytes};
use super::{CatalogError, CodecError, Manifest};

/// Named types of a schema, to follow references (as apache-avro resolves them).
pub type Names<'s> = NamesRef<'s>;

/// The scale of every decimal of `schema`, by path (`field.sub`, `list[]`; a union's branch
/// shares its path).
pub fn decimal_scales(schema: &Schema, names: &Names<'_>) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    walk(schema, names, "", &mut out, 0);
    out
}

fn walk(
    schema: &Schema,
    names: &Names<'_>,
    path: &str,
    out: &mut HashMap<String, u32>,
    depth: u32,
) {
    // Recursive types cannot hold a decimal we would miss at this depth in our schemas.
    if depth > 32 {
        return;
    }
    match schema {
        Schema::Decimal(d) => {
            out.insert(path.to_string(), d.scale as u32);
        }
        Schema::Record(r) => {
            for field in &r.fields {
                walk(
                    &field.schema,
                    names,
                    &format!("{path}.{}", field.name),
                    out,
                    depth + 1,
                );
            }
        }
        Schema::Array(a) => walk(&a.items, names, &format!("{path}[]"), out, depth + 1),
        Schema::Map(m) => walk(&m.types, names, &format!("{path}{{}}"), out, depth + 1),
        Schema::Union(u) => {
            for variant in u.variants() {
                walk(variant, names, path, out, depth + 1);
            }
        }
        Schema::Ref { name } => {
            if let Some(defined) = names.get(name) {
                walk(defined, names, path, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Rewrites every decimal of `value` (decoded with the writer's `schema`) at the scale the
/// reader has at the same path, exactly: Avro's resolution keeps a decimal's unscaled bytes,
/// so 1234.56 written at scale 2 would read as 12.3456 at scale 4. A value that the reader's
/// scale cannot hold without rounding is refused with the reason.
pub fn rescale(
    schema: &Schema,
    names: &Names<'_>,
    value: &mut Value,
    reader: &HashMap<String, u32>,
    path: &str,
) -> Result<(), CodecError> {
    match (schema, value) {
        (Schema::Decimal(d), Value::Decimal(decimal)) => {
            let from = d.scale as u32;
            if let Some(&to) = reader.get(path)
                && to != from
            {
                let bytes = Vec::<u8>::try_from(&*decimal)
                    .map_err(|e| CodecError::Shape(format!("{path}: {e}")))?;
                let exact = decimal_from_bytes(&bytes, from, path)?;
                let at_reader = decimal_to_bytes(exact, to, path).map_err(|e| {
                    CodecError::Shape(format!(
                        "{e} (written at scale {from}, read at scale {to}: not rounded)"
                    ))
                })?;
                *decimal = apache_avro::Decimal::from(at_reader);
            }
            Ok(())
        }
        (Schema::Record(r), Value::Record(fields)) => {
            for (name, field_value) in fields.iter_mut() {
                if let Some(field) = r.fields.iter().find(|f| &f.name == name) {
                    rescale(
                        &field.schema,
                        names,
                        field_value,
                        reader,
                        &format!("{path}.{name}"),
                    )?;
                }
            }
            Ok(())
        }
        (Schema::Array(a), Value::Array(items)) => {
            let inner = format!("{path}[]");
            items
                .iter_mut()
                .try_for_each(|item| rescale(&a.items, names, item, reader, &inner))
        }
        (Schema::Map(m), Value::Map(entries)) => {
            let inner = format!("{path}{{}}");
            entries
                .values_mut()
                .try_for_each(|v| rescale(&m.types, names, v, reader, &inner))
        }
        (Schema::Union(u), Value::Union(index, inner)) => match u.variants().get(*index as usize) {
            Some(variant) => rescale(variant, names, inner, reader, path),
            None => Ok(()),
        },
        (Schema::Ref { name }, value) => match names.get(name) {
            Some(defined) => rescale(defined, names, value, reader, path),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Every enum of `schema` (condmon's schemas define each enum once, references aside).
fn enums(schema: &Schema) -> Vec<&apache_avro::schema::EnumSchema> {
    fn walk<'s>(
        schema: &'s Schema,
        out: &mut Vec<&'s apache_avro::schema::EnumSchema>,
        depth: u32,
    ) {
        if depth > 32 {
            return;
        }
        match schema {
            Schema::Enum(e) => out.push(e),
            Schema::Record(r) => r
                .fields
                .iter()
                .for_each(|f| walk(&f.schema, out, depth + 1)),
            Schema::Array(a) => walk(&a.items, out, depth + 1),
            Schema::Map(m) => walk(&m.types, out, depth + 1),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out, depth + 1)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut out, 0);
    out
}

/// The symbols of every enum of `schema`, by name.
pub fn enum_symbols(schema: &Schema) -> HashMap<String, Vec<String>> {
    enums(schema)
        .into_iter()
        .map(|e| (e.name.name().to_string(), e.symbols.clone()))
        .collect()
}

/// Finds the symbols of `value` (decoded with the writer's `schema`) that the reader's enum of
/// the same name does not have, as `enum name: symbol`; Avro's resolution then reads each as
/// the reader enum's default. Where that default alone would be wrong, the symbol is replaced
/// first: an item type the reader does not know is a credit (CREDIT_MEMO) when its record's
/// open amount is negative (the default, DEBIT_MEMO, otherwise).
pub fn unknown_symbols(
    schema: &Schema,
    names: &Names<'_>,
    value: &mut Value,
    reader: &HashMap<String, Vec<String>>,
    found: &mut Vec<String>,
) {
    let unknown = |name: &str, symbol: &str| {
        reader
            .get(name)
            .is_some_and(|symbols| !symbols.iter().any(|s| s == symbol))
    };
    match (schema, value) {
        (Schema::Enum(e), Value::Enum(_, symbol)) if unknown(e.name.name(), symbol) => {
            found.push(format!("{}: {symbol}", e.name.name()));
        }
        (Schema::Record(r), Value::Record(fields)) => {
            let negative = fields.iter().any(|(name, v)| {
                name == "open_amount"
                    && matches!(v, Value::Decimal(d)
                        if Vec::<u8>::try_from(d).is_ok_and(|b| b.first().is_some_and(|b| b & 0x80 != 0)))
            });
            for (name, field_value) in fields.iter_mut() {
                let Some(field) = r.fields.iter().find(|f| &f.name == name) else {
                    continue;
                };
                if let (Schema::Enum(e), Value::Enum(_, symbol)) =
                    (&field.schema, &mut *field_value)
                    && e.name.name() == "ItemType"
                    && negative
                    && unknown("ItemType", symbol)
                {
                    found.push(format!("ItemType: {symbol} (negative: CREDIT_MEMO)"));
                    *field_value = Value::Enum(0, "CREDIT_MEMO".into());
                    continue;
                }
                unknown_symbols(&field.schema, names, field_value, reader, found);
            }
        }
        (Schema::Array(a), Value::Array(items)) => items
            .iter_mut()
            .for_each(|item| unknown_symbols(&a.items, names, item, reader, found)),
        (Schema::Map(m), Value::Map(entries)) => entries
            .values_mut()
            .for_each(|v| unknown_symbols(&m.types, names, v, reader, found)),
        (Schema::Union(u), Value::Union(index, inner)) => {
            if let Some(variant) = u.variants().get(*index as usize) {
                unknown_symbols(variant, names, inner, reader, found)
            }
        }
        (Schema::Ref { name }, value) => {
            if let Some(defined) = names.get(name) {
                unknown_symbols(defined, names, value, reader, found)
            }
        }
        _ => {}
    }
}

/// The enums of `schema` without a default: a record carrying a symbol added after this
/// schema would be refused instead of read as documented.
pub fn enums_without_default(schema: &Schema) -> Vec<String> {
    enums(schema)
        .into_iter()
        .filter(|e| e.default.is_none())
        .map(|e| e.name.name().to_string())
        .collect()
}

/// One step of a stream's schema history: can the newer schema read what the older wrote?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub stream: &'static str,
    pub older: (u32, String),
    pub newer: (u32, String),
    /// Why the newer cannot read the older's records, if it cannot.
    pub problem: Option<String>,
}

/// Every stream's schema versions in `dir` (by id), each checked against the one before it
/// (backward compatibility: a consumer on the newer schema reads every record written with
/// the older).
pub fn check(dir: &Path) -> Result<Vec<Step>, CatalogError> {
    let manifest_path = dir.join("manifest.toml");
    let (read, invalid) = (super::read_file, super::invalid_file);
    let manifest: Manifest = toml::from_str(&read(&manifest_path)?)
        .map_err(|e| invalid(&manifest_path, e.to_string()))?;
    let mut by_stream: HashMap<&'static str, Vec<(u32, String)>> = HashMap::new();
    for entry in &manifest.schema {
        by_stream
            .entry(entry.stream.as_str())
            .or_default()
            .push((entry.id, entry.file.clone()));
    }
    let mut steps = Vec::new();
    let mut streams: Vec<_> = by_stream.into_iter().collect();
    streams.sort();
    for (stream, mut versions) in streams {
        versions.sort();
        for pair in versions.windows(2) {
            let parse = |file: &str| {
                let path = dir.join(file);
                Schema::parse_str(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))
            };
            let (older, newer) = (parse(&pair[0].1)?, parse(&pair[1].1)?);
            let problem =
                apache_avro::schema_compatibility::SchemaCompatibility::can_read(&older, &newer)
                    .err()
                    .map(|e| e.to_string());
            steps.push(Step {
                stream,
                older: pair[0].clone(),
                newer: pair[1].clone(),
                problem,
            });
        }
    }
    Ok(steps)
}

/// The enums without a default in the current schema of each stream others write: each one,
/// as `stream: file: enum`. A newer producer's symbol there would dead-letter a valid record.
pub fn missing_enum_defaults(dir: &Path) -> Result<Vec<String>, CatalogError> {
    let manifest_path = dir.join("manifest.toml");
    let (read, invalid) = (super::read_file, super::invalid_file);
    let manifest: Manifest = toml::from_str(&read(&manifest_path)?)
        .map_err(|e| invalid(&manifest_path, e.to_string()))?;
    let mut out = Vec::new();
    for stream in crate::model::Stream::FROM_OUTSIDE {
        let Some(current) = manifest
            .schema
            .iter()
            .filter(|e| e.stream == stream)
            .max_by_key(|e| e.id)
        else {
            continue;
        };
        let path = dir.join(&current.file);
        let schema = Schema::parse_str(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))?;
        for name in enums_without_default(&schema) {
            out.push(format!(
                "{}: {}: enum {name}",
                stream.as_str(),
                current.file
            ));
        }
    }
    Ok(out)
}
