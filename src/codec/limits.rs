//! Bounds checked on the wire, before anything is decoded: a length prefix is only a claim, and
//! the Avro decoder reserves memory for what it claims (`Vec::reserve` of an array's block
//! count, a buffer of a string's length). This walk reads the datum with the writer's schema,
//! allocating nothing, and refuses a string, bytes or array beyond its bound, a datum cut short
//! and trailing bytes. It accepts everything the Avro specification allows a writer to do:
//! several array blocks, blocks with a byte size (negative counts), non-minimal varints.
//!
//! These are generous bounds against memory exhaustion; the business limits per field (an
//! entry reason of at most 255 bytes, ...) are in [`crate::model::validate`].

use apache_avro::Schema;
use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, NamesRef, NamespaceRef, RecordSchema, UuidSchema,
};

/// The longest string or bytes value of any field.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// The most elements of one array (or entries of one map), over all its blocks.
pub const MAX_ITEMS: usize = 100_000;
/// How deeply values may nest (a recursive writer schema cannot exhaust the stack).
const MAX_DEPTH: usize = 64;

/// Checks `datum` against `schema` (its named types resolved in `names`) without decoding it.
/// The error names the field.
pub fn check(schema: &Schema, names: &NamesRef<'_>, datum: &[u8]) -> Result<(), String> {
    let mut walk = Walk {
        bytes: datum,
        pos: 0,
        names,
    };
    walk.value(schema, None, "<record>", 0)?;
    if walk.pos != datum.len() {
        return Err(format!(
            "{} trailing bytes after the datum",
            datum.len() - walk.pos
        ));
    }
    Ok(())
}

struct Walk<'a, 'n, 's> {
    bytes: &'a [u8],
    pos: usize,
    names: &'n NamesRef<'s>,
}

impl Walk<'_, '_, '_> {
    fn truncated(&self, field: &str) -> String {
        format!("the datum is truncated (in field `{field}`)")
    }

    /// A zig-zag varint of up to 10 bytes, minimal or not.
    fn long(&mut self, field: &str) -> Result<i64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(self.truncated(field));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(format!("field `{field}`: a varint longer than 10 bytes"))
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<(), String> {
        if self.bytes.len() - self.pos < n {
            return Err(self.truncated(field));
        }
        self.pos += n;
        Ok(())
    }

    /// A length-prefixed string or bytes value.
    fn sized(&mut self, field: &str) -> Result<(), String> {
        let len = self.long(field)?;
        if len < 0 {
            return Err(format!("field `{field}`: negative length {len}"));
        }
        if len as u64 > MAX_STRING_BYTES as u64 {
            return Err(format!(
                "field `{field}` is {len} bytes long: at most {MAX_STRING_BYTES}"
            ));
        }
        self.skip(len as usize, field)
    }

    /// An array's or map's blocks: `each` reads one element.
    fn blocks(
        &mut self,
        field: &str,
        mut each: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut total = 0u64;
        loop {
            let count = self.long(field)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A block with its byte size after the count (for readers that skip).
                self.long(field)?;
            }
            total += count.unsigned_abs();
            if total > MAX_ITEMS as u64 {
                return Err(format!(
                    "field `{field}` has more than {MAX_ITEMS} entries ({total} so far)"
                ));
            }
            for _ in 0..count.unsigned_abs() {
                each(self)?;
            }
        }
    }

    fn value(
        &mut self,
        schema: &Schema,
        namespace: NamespaceRef,
        field: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "field `{field}`: nested more than {MAX_DEPTH} deep"
            ));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1, field),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long(field).map(drop),
            Schema::Float => self.skip(4, field),
            Schema::Double => self.skip(8, field),
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => self.sized(field),
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(UuidSchema::Fixed(f))
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => self.skip(f.size, field),
            Schema::Union(union) => {
                let index = self.long(field)?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| format!("field `{field}`: no union branch {index}"))?;
                self.value(variant, namespace, field, depth + 1)
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let name = name.fully_qualified_name(namespace);
                for f in fields {
                    self.value(&f.schema, name.namespace(), &f.name, depth + 1)?;
                }
                Ok(())
            }
            Schema::Array(array) => self.blocks(field, |walk| {
                walk.value(&array.items, namespace, field, depth + 1)
            }),
            Schema::Map(map) => self.blocks(field, |walk| {
                walk.sized(field)?;
                walk.value(&map.types, namespace, field, depth + 1)
            }),
            Schema::Ref { name } => {
                let name = name.fully_qualified_name(namespace);
                let names = self.names;
                let target = names
                    .get(name.as_ref())
                    .ok_or_else(|| format!("field `{field}`: unknown type {name:?}"))?;
                self.value(target, name.namespace(), field, depth + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type": "record", "name": "R", "namespace": "t", "fields": [
        {"name": "id", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "refs", "type": {"type": "array", "items": {"type": "record", "name": "Ref",
            "fields": [{"name": "n", "type": "int"}]}}},
        {"name": "more", "type": {"type": "array", "items": "Ref"}}
    ]}"#;

    fn schema() -> Schema {
        Schema::parse_str(SCHEMA).unwrap()
    }

    fn check(schema: &Schema, datum: &[u8]) -> Result<(), String> {
        let resolved = apache_avro::schema::ResolvedSchema::try_from(schema).unwrap();
        super::check(schema, resolved.get_names(), datum)
    }

    /// A zig-zag varint, minimal.
    fn varint(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn a_datum_apache_avro_writes_passes() {
        let schema = schema();
        let value = apache_avro::types::Value::Record(vec![
            ("id".into(), "A".into()),
            (
                "note".into(),
                apache_avro::types::Value::Union(1, Box::new("hello".into())),
            ),
            (
                "refs".into(),
                apache_avro::types::Value::Array(vec![apache_avro::types::Value::Record(vec![(
                    "n".into(),
                    apache_avro::types::Value::Int(7),
                )])]),
            ),
            ("more".into(), apache_avro::types::Value::Array(vec![])),
        ]);
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        assert_eq!(check(&schema, &datum), Ok(()));
        assert_eq!(
            check(&schema, &datum[..datum.len() - 1]),
            Err("the datum is truncated (in field `more`)".into())
        );
        let mut longer = datum.clone();
        longer.push(0);
        assert_eq!(
            check(&schema, &longer),
            Err("1 trailing bytes after the datum".into())
        );
    }

    #[test]
    fn several_blocks_sized_blocks_and_non_minimal_varints_are_accepted() {
        let schema = schema();
        let mut datum = vec![0x82, 0x00]; // "id": a length of 1 written in two bytes
        datum.push(b'A');
        datum.extend(varint(0)); // "note": null
        datum.extend(varint(2)); // "refs": a block of 2
        datum.extend(varint(1));
        datum.extend(varint(2));
        datum.extend(varint(-1)); // then a block of 1 with its byte size
        datum.extend(varint(1));
        datum.extend(varint(3));
        datum.extend(varint(0));
        datum.extend(varint(0)); // "more": empty
        assert_eq!(check(&schema, &datum), Ok(()));
        // And the decoder reads the same datum whole (Java's blocking encoder writes so).
        let mut rest = datum.as_slice();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut rest)
            .unwrap();
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record")
        };
        assert_eq!(fields[0].1, apache_avro::types::Value::String("A".into()));
        let apache_avro::types::Value::Array(refs) = &fields[2].1 else {
            panic!("not an array")
        };
        let numbers: Vec<&apache_avro::types::Value> = refs
            .iter()
            .map(|r| match r {
                apache_avro::types::Value::Record(f) => &f[0].1,
                other => other,
            })
            .collect();
        assert_eq!(
            numbers,
            [1, 2, 3]
                .map(apache_avro::types::Value::Int)
                .iter()
                .collect::<Vec<_>>(),
            "three elements over two blocks"
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn a_claimed_length_beyond_the_bounds_is_refused_before_anything_is_reserved() {
        let schema = schema();
        let mut datum = varint(1);
        datum.push(b'A');
        datum.extend(varint(1));
        datum.extend(varint(1 << 40)); // a note of a terabyte, 9 bytes in all
        assert_eq!(
            check(&schema, &datum),
            Err("field `note` is 1099511627776 bytes long: at most 65536".into())
        );
        let mut datum = varint(1);
        datum.push(b'A');
        datum.extend(varint(0));
        datum.extend(varint(i64::MAX / 4)); // an array claiming 2^61 records
        assert_eq!(
            check(&schema, &datum),
            Err(format!(
                "field `refs` has more than {MAX_ITEMS} entries ({} so far)",
                i64::MAX / 4
            ))
        );
    }
}
