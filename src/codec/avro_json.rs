//! A schema-driven bridge between Avro and the JSON form of the model: for records of an older
//! schema (after Avro's resolution), for inputs written by the tools, and as the fallback of
//! an output write that failed (its errors name the field).
//!
//! The model derives serde for its JSON form (decimals as strings, dates as `YYYY-MM-DD`).
//! Avro needs decimals as scaled two's-complement bytes and dates as days since the epoch; this
//! walks the schema once per value and converts, so every event has exactly one definition and
//! its two forms cannot drift apart.

use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::CodecError;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();

fn mismatch(path: &str, expected: &str, got: &Json) -> CodecError {
    CodecError::Shape(format!("{path}: expected {expected}, got {got}"))
}

/// The value branch of a `["null", T]` union (all of condmon's unions are), with its index.
pub(super) fn value_variant(u: &apache_avro::schema::UnionSchema) -> Option<(usize, &Schema)> {
    u.variants()
        .iter()
        .enumerate()
        .find(|(_, v)| !matches!(v, Schema::Null))
}

/// JSON (the model's serde form) → Avro value shaped by `schema`.
pub fn json_to_avro(schema: &Schema, json: &Json, path: &str) -> Result<Value, CodecError> {
    Ok(match schema {
        Schema::Null => match json {
            Json::Null => Value::Null,
            other => return Err(mismatch(path, "null", other)),
        },
        Schema::Boolean => Value::Boolean(
            json.as_bool()
                .ok_or_else(|| mismatch(path, "boolean", json))?,
        ),
        Schema::Int => {
            let n = json.as_i64().ok_or_else(|| mismatch(path, "int", json))?;
            Value::Int(i32::try_from(n).map_err(|_| mismatch(path, "32-bit int", json))?)
        }
        Schema::Long => Value::Long(json.as_i64().ok_or_else(|| mismatch(path, "long", json))?),
        Schema::String => Value::String(
            json.as_str()
                .ok_or_else(|| mismatch(path, "string", json))?
                .to_string(),
        ),
        Schema::Date => {
            let s = json
                .as_str()
                .ok_or_else(|| mismatch(path, "date string", json))?;
            let date =
                NaiveDate::from_str(s).map_err(|e| CodecError::Shape(format!("{path}: {e}")))?;
            Value::Date((date - EPOCH).num_days() as i32)
        }
        Schema::Decimal(d) => {
            let decimal = match json {
                Json::String(s) => Decimal::from_str(s),
                Json::Number(n) => Decimal::from_str(&n.to_string()),
                other => return Err(mismatch(path, "decimal", other)),
            }
            .map_err(|e| CodecError::Shape(format!("{path}: {e}")))?;
            Value::Decimal(apache_avro::Decimal::from(decimal_to_bytes(
                decimal,
                d.scale as u32,
                path,
            )?))
        }
        Schema::Enum(e) => {
            let symbol = json
                .as_str()
                .ok_or_else(|| mismatch(path, "enum symbol", json))?;
            let index = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                CodecError::Shape(format!("{path}: `{symbol}` is not one of {:?}", e.symbols))
            })?;
            Value::Enum(index as u32, symbol.to_string())
        }
        Schema::Array(a) => {
            let items = json
                .as_array()
                .ok_or_else(|| mismatch(path, "array", json))?;
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| json_to_avro(&a.items, item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Schema::Union(u) => {
            // Our unions are all ["null", T]: pick null for JSON null, T otherwise.
            let null_index = u.variants().iter().position(|v| matches!(v, Schema::Null));
            match (json, null_index) {
                (Json::Null, Some(i)) => Value::Union(i as u32, Box::new(Value::Null)),
                _ => {
                    let (i, variant) = value_variant(u).ok_or_else(|| {
                        CodecError::Shape(format!("{path}: union without a value variant"))
                    })?;
                    Value::Union(i as u32, Box::new(json_to_avro(variant, json, path)?))
                }
            }
        }
        Schema::Record(r) => {
            let object = json
                .as_object()
                .ok_or_else(|| mismatch(path, "object", json))?;
            let mut fields = Vec::with_capacity(r.fields.len());
            for field in &r.fields {
                let value = object.get(&field.name).unwrap_or(&Json::Null);
                let field_path = format!("{path}.{}", field.name);
                fields.push((
                    field.name.clone(),
                    json_to_avro(&field.schema, value, &field_path)?,
                ));
            }
            Value::Record(fields)
        }
        other => {
            return Err(CodecError::Shape(format!(
                "{path}: unsupported schema type {other:?}"
            )));
        }
    })
}

/// JSON (the model's serde form) → the Avro binary encoding of `schema`, appended to `out`
/// without building an Avro value: the bytes [`json_to_avro`] and apache-avro's writer give
/// (a test keeps the two equal over every sample input and golden output), at a fraction of
/// the allocations. The error names the field from `path` on.
pub fn write_json(
    schema: &Schema,
    json: &Json,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    write_value(schema, json, out).map_err(|e| CodecError::Shape(format!("{path}{e}")))
}

/// Errors are the path below this value (`.field[2].sub`) followed by `: reason`, built as
/// the error unwinds so the happy path formats nothing.
fn write_value(schema: &Schema, json: &Json, out: &mut Vec<u8>) -> Result<(), String> {
    let mismatch = |expected: &str| format!(": expected {expected}, got {json}");
    match schema {
        Schema::Null => match json {
            Json::Null => {}
            _ => return Err(mismatch("null")),
        },
        Schema::Boolean => out.push(u8::from(json.as_bool().ok_or_else(|| mismatch("boolean"))?)),
        Schema::Int => {
            let n = json.as_i64().ok_or_else(|| mismatch("int"))?;
            i32::try_from(n).map_err(|_| mismatch("32-bit int"))?;
            write_long(n, out);
        }
        Schema::Long => write_long(json.as_i64().ok_or_else(|| mismatch("long"))?, out),
        Schema::String => write_bytes(
            json.as_str().ok_or_else(|| mismatch("string"))?.as_bytes(),
            out,
        ),
        Schema::Date => {
            let text = json.as_str().ok_or_else(|| mismatch("date string"))?;
            let date = NaiveDate::from_str(text).map_err(|e| format!(": {e}"))?;
            write_long((date - EPOCH).num_days(), out);
        }
        Schema::Decimal(d) => {
            let decimal = match json {
                Json::String(s) => Decimal::from_str(s),
                Json::Number(n) => Decimal::from_str(&n.to_string()),
                _ => return Err(mismatch("decimal")),
            }
            .map_err(|e| format!(": {e}"))?;
            let bytes = decimal_to_bytes(decimal, d.scale as u32, "").map_err(|e| e.to_string())?;
            write_bytes(&bytes, out);
        }
        Schema::Enum(e) => {
            let symbol = json.as_str().ok_or_else(|| mismatch("enum symbol"))?;
            let index = e
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| format!(": `{symbol}` is not one of {:?}", e.symbols))?;
            write_long(index as i64, out);
        }
        Schema::Array(a) => {
            let items = json.as_array().ok_or_else(|| mismatch("array"))?;
            if !items.is_empty() {
                write_long(items.len() as i64, out);
                for (i, item) in items.iter().enumerate() {
                    write_value(&a.items, item, out).map_err(|e| format!("[{i}]{e}"))?;
                }
            }
            out.push(0);
        }
        Schema::Union(u) => {
            // Our unions are all ["null", T]: null for JSON null, T otherwise.
            let null_index = u.variants().iter().position(|v| matches!(v, Schema::Null));
            match (json, null_index) {
                (Json::Null, Some(i)) => write_long(i as i64, out),
                _ => {
                    let (i, variant) = value_variant(u).ok_or(": union without a value variant")?;
                    write_long(i as i64, out);
                    write_value(variant, json, out)?;
                }
            }
        }
        Schema::Record(r) => {
            let object = json.as_object().ok_or_else(|| mismatch("object"))?;
            for field in &r.fields {
                let value = object.get(&field.name).unwrap_or(&Json::Null);
                write_value(&field.schema, value, out)
                    .map_err(|e| format!(".{}{e}", field.name))?;
            }
        }
        other => return Err(format!(": unsupported schema type {other:?}")),
    }
    Ok(())
}

/// A zig-zag varint, as Avro writes `int` and `long`.
pub(super) fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub(super) fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

/// Avro value (already resolved to the reader schema) → the model's JSON form.
pub fn avro_to_json(schema: &Schema, value: &Value, path: &str) -> Result<Json, CodecError> {
    let unexpected = || {
        CodecError::Shape(format!(
            "{path}: value {value:?} does not fit schema {schema:?}"
        ))
    };
    Ok(match (schema, value) {
        (Schema::Null, Value::Null) => Json::Null,
        (Schema::Boolean, Value::Boolean(b)) => Json::Bool(*b),
        (Schema::Int, Value::Int(n)) => Json::from(*n),
        (Schema::Long, Value::Long(n)) => Json::from(*n),
        (Schema::String, Value::String(s)) => Json::String(s.clone()),
        (Schema::Date, Value::Date(days)) => {
            let date = EPOCH
                .checked_add_signed(chrono::Duration::days(i64::from(*days)))
                .ok_or_else(unexpected)?;
            Json::String(date.to_string())
        }
        (Schema::Decimal(d), Value::Decimal(dec)) => {
            let bytes =
                Vec::<u8>::try_from(dec).map_err(|e| CodecError::Shape(format!("{path}: {e}")))?;
            Json::String(decimal_from_bytes(&bytes, d.scale as u32, path)?.to_string())
        }
        (Schema::Enum(_), Value::Enum(_, symbol)) => Json::String(symbol.clone()),
        (Schema::Array(a), Value::Array(items)) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| avro_to_json(&a.items, item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Union(u), Value::Union(i, inner)) => {
            let variant = u.variants().get(*i as usize).ok_or_else(unexpected)?;
            avro_to_json(variant, inner, path)?
        }
        (Schema::Record(r), Value::Record(fields)) => {
            let mut object = serde_json::Map::with_capacity(fields.len());
            for ((name, value), field) in fields.iter().zip(&r.fields) {
                object.insert(
                    name.clone(),
                    avro_to_json(&field.schema, value, &format!("{path}.{name}"))?,
                );
            }
            Json::Object(object)
        }
        _ => return Err(unexpected()),
    })
}

/// A decimal as the minimal big-endian two's-complement bytes of its value at `scale`.
/// More fractional digits than the schema holds is an error, never a silent rounding.
pub(super) fn decimal_to_bytes(
    value: Decimal,
    scale: u32,
    path: &str,
) -> Result<Vec<u8>, CodecError> {
    let mut scaled = value;
    scaled.rescale(scale);
    if scaled != value {
        return Err(CodecError::Shape(format!(
            "{path}: {value} has more than {scale} decimal places"
        )));
    }
    // `rescale` stops short of the scale when the value is too large to hold it: the bytes
    // would then say a number 10^k times smaller.
    if scaled.scale() != scale {
        return Err(CodecError::Shape(format!(
            "{path}: {value} is too large for {scale} decimal places"
        )));
    }
    let bytes = scaled.mantissa().to_be_bytes();
    // Drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(bytes[start..].to_vec())
}

pub(super) fn decimal_from_bytes(
    bytes: &[u8],
    scale: u32,
    path: &str,
) -> Result<Decimal, CodecError> {
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(CodecError::Shape(format!(
            "{path}: decimal of {} bytes",
            bytes.len()
        )));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0x00 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(bytes);
    let mantissa = i128::from_be_bytes(wide);
    Decimal::try_from_i128_with_scale(mantissa, scale)
        .map(|d| d.normalize())
        .map_err(|e| CodecError::Shape(format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decimals_survive_the_byte_form(mantissa in -10_i64.pow(15)..10_i64.pow(15), scale in 0u32..=4) {
            let value = Decimal::new(mantissa, scale);
            let bytes = decimal_to_bytes(value, 4, "x").unwrap();
            prop_assert_eq!(decimal_from_bytes(&bytes, 4, "x").unwrap(), value);
        }
    }

    #[test]
    fn decimal_bytes_are_minimal_twos_complement() {
        assert_eq!(
            decimal_to_bytes(Decimal::new(1, 4), 4, "x").unwrap(),
            vec![0x01]
        );
        assert_eq!(
            decimal_to_bytes(Decimal::new(-1, 4), 4, "x").unwrap(),
            vec![0xFF]
        );
        assert_eq!(
            decimal_to_bytes(Decimal::new(128, 4), 4, "x").unwrap(),
            vec![0x00, 0x80]
        );
    }

    #[test]
    fn a_decimal_too_large_for_the_scale_is_refused_not_shrunk() {
        let huge = Decimal::from_i128_with_scale(70_000_000_000_000_000_000_000_000, 0);
        let err = decimal_to_bytes(huge, 4, "amount").unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn a_decimal_finer_than_the_schema_is_refused_not_rounded() {
        let err = decimal_to_bytes(Decimal::new(100_001, 5), 4, "amount").unwrap_err();
        assert!(
            err.to_string().contains("more than 4 decimal places"),
            "{err}"
        );
    }
}
