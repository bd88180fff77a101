//! Avro binary → the model, through the model's own serde (its JSON form: decimals and dates
//! as strings, enums as their symbols), without building an Avro value or a JSON value first.
//! Used for a record written with the reader's own schema (the common case); a record written
//! with another schema goes through Avro's resolution instead (`SchemaCatalog::decode_json`).
//! The bytes were bounds-checked by `limits::check` before they get here.

use apache_avro::Schema;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::avro_json::decimal_from_bytes;

const EPOCH: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();

#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Reads one `T` of `schema` from `datum`, which must hold exactly that.
pub fn from_avro<T: de::DeserializeOwned>(schema: &Schema, datum: &[u8]) -> Result<T, Error> {
    let mut input = datum;
    let value = T::deserialize(Datum {
        schema,
        input: &mut input,
    })?;
    if !input.is_empty() {
        return Err(Error(format!("{} bytes after the datum", input.len())));
    }
    Ok(value)
}

fn long(input: &mut &[u8]) -> Result<i64, Error> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| Error("truncated varint".into()))?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(Error("varint longer than 10 bytes".into()))
}

fn bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    let len = usize::try_from(long(input)?).map_err(|_| Error("negative length".into()))?;
    if input.len() < len {
        return Err(Error("truncated bytes".into()));
    }
    let (taken, rest) = input.split_at(len);
    *input = rest;
    Ok(taken)
}

fn string<'a>(input: &mut &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes(input)?).map_err(|e| Error(format!("string: {e}")))
}

/// One value of `schema` at the front of `input`.
struct Datum<'s, 'i, 'a> {
    schema: &'s Schema,
    input: &'i mut &'a [u8],
}

impl<'de> de::Deserializer<'de> for Datum<'_, '_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.schema {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => {
                let (&byte, rest) = self
                    .input
                    .split_first()
                    .ok_or_else(|| Error("truncated boolean".into()))?;
                *self.input = rest;
                visitor.visit_bool(byte != 0)
            }
            Schema::Int | Schema::Long => visitor.visit_i64(long(self.input)?),
            Schema::String => visitor.visit_str(string(self.input)?),
            Schema::Date => {
                let days = long(self.input)?;
                let date = EPOCH
                    .checked_add_signed(chrono::Duration::days(days))
                    .ok_or_else(|| Error(format!("{days} days is not a date")))?;
                visitor.visit_string(date.to_string())
            }
            Schema::Decimal(d) => {
                let decimal = decimal_from_bytes(bytes(self.input)?, d.scale as u32, "")
                    .map_err(|e| Error(e.to_string()))?;
                visitor.visit_string(decimal.to_string())
            }
            Schema::Enum(e) => visitor.visit_str(symbol(e, self.input)?),
            Schema::Array(a) => visitor.visit_seq(Items {
                schema: &a.items,
                input: self.input,
                left: 0,
            }),
            Schema::Union(u) => {
                let index = long(self.input)?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| Error(format!("union branch {index}")))?;
                match variant {
                    Schema::Null => visitor.visit_unit(),
                    variant => Datum {
                        schema: variant,
                        input: self.input,
                    }
                    .deserialize_any(visitor),
                }
            }
            Schema::Record(r) => visitor.visit_map(Fields {
                fields: &r.fields,
                input: self.input,
                next: 0,
            }),
            other => Err(Error(format!("unsupported schema {other:?}"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.schema {
            Schema::Union(u) => {
                let index = long(self.input)?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| Error(format!("union branch {index}")))?;
                match variant {
                    Schema::Null => visitor.visit_none(),
                    variant => visitor.visit_some(Datum {
                        schema: variant,
                        input: self.input,
                    }),
                }
            }
            Schema::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.schema {
            Schema::Enum(e) => {
                let symbol: de::value::StrDeserializer<'_, Error> =
                    symbol(e, self.input)?.into_deserializer();
                visitor.visit_enum(symbol)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

fn symbol<'s>(e: &'s apache_avro::schema::EnumSchema, input: &mut &[u8]) -> Result<&'s str, Error> {
    let index = long(input)?;
    usize::try_from(index)
        .ok()
        .and_then(|i| e.symbols.get(i))
        .map(String::as_str)
        .ok_or_else(|| Error(format!("enum index {index} of {}", e.name.name())))
}

/// An array's items, block by block (a negative count is followed by the block's size).
struct Items<'s, 'i, 'a> {
    schema: &'s Schema,
    input: &'i mut &'a [u8],
    left: i64,
}

impl<'de> SeqAccess<'de> for Items<'_, '_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            let count = long(self.input)?;
            if count == 0 {
                return Ok(None);
            }
            if count < 0 {
                long(self.input)?; // the block's size in bytes
            }
            self.left = count.abs();
        }
        self.left -= 1;
        seed.deserialize(Datum {
            schema: self.schema,
            input: self.input,
        })
        .map(Some)
    }
}

/// A record's fields, in the schema's order, named as the model's JSON form names them.
struct Fields<'s, 'i, 'a> {
    fields: &'s [apache_avro::schema::RecordField],
    input: &'i mut &'a [u8],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_, '_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let name: de::value::StrDeserializer<'_, Error> = field.name.as_str().into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = &self.fields[self.next];
        self.next += 1;
        seed.deserialize(Datum {
            schema: &field.schema,
            input: self.input,
        })
        .map_err(|e| Error(format!("{}: {e}", field.name)))
    }
}
