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
