//! Avro binary → the model, through the model's own serde (its JSON form: decimals and dates
//! as strings, enums as their symbols), without building an Avro value or a JSON value first.
//! Used for a record written with the reader's own schema (the common case); a record written
//! with another schema goes through Avro's resolution instead (`SchemaCatalog::decode_json`).
//! The bytes were bounds-checked by `limits::check` before they get here.

use apache_avro::Schema;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::avro_json::{decimal_from_bytes, value_variant, write_bytes, write_long};

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
                let variant = branch(u, self.input)?;
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
                let variant = branch(u, self.input)?;
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

/// The branch of a union the datum took.
fn branch<'s>(
    u: &'s apache_avro::schema::UnionSchema,
    input: &mut &[u8],
) -> Result<&'s Schema, Error> {
    let index = long(input)?;
    usize::try_from(index)
        .ok()
        .and_then(|i| u.variants().get(i))
        .ok_or_else(|| Error(format!("union branch {index}")))
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

/// The model → Avro binary of `schema`, through the model's own serde (its JSON form), written
/// to `out` without building a JSON or an Avro value: the bytes `write_json` gives for the
/// model's JSON form (a test keeps them equal). Fields come in the schema's order when the
/// model declares them so; a struct that does not is written through its JSON form instead.
pub fn to_avro<T: serde::Serialize>(
    schema: &Schema,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    value.serialize(Writer { schema, out })
}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Writes one value of `schema`.
struct Writer<'s, 'o> {
    schema: &'s Schema,
    out: &'o mut Vec<u8>,
}

impl<'s, 'o> Writer<'s, 'o> {
    fn mismatch(&self, what: &str) -> Error {
        Error(format!("{what} does not fit {:?}", self.schema))
    }

    /// The value branch of a `["null", T]` union, its index written.
    fn value_branch(self) -> Result<Writer<'s, 'o>, Error> {
        match self.schema {
            Schema::Union(u) => {
                let (i, variant) = value_variant(u)
                    .ok_or_else(|| Error("union without a value variant".into()))?;
                write_long(i as i64, self.out);
                Ok(Writer {
                    schema: variant,
                    out: self.out,
                })
            }
            _ => Ok(self),
        }
    }

    fn null(self) -> Result<(), Error> {
        match self.schema {
            Schema::Null => Ok(()),
            Schema::Union(u) => {
                let i = u
                    .variants()
                    .iter()
                    .position(|v| matches!(v, Schema::Null))
                    .ok_or_else(|| self.mismatch("null"))?;
                write_long(i as i64, self.out);
                Ok(())
            }
            _ => Err(self.mismatch("null")),
        }
    }
}

impl<'s, 'o> serde::Serializer for Writer<'s, 'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'s, 'o>;
    type SerializeTuple = serde::ser::Impossible<(), Error>;
    type SerializeTupleStruct = serde::ser::Impossible<(), Error>;
    type SerializeTupleVariant = serde::ser::Impossible<(), Error>;
    type SerializeMap = serde::ser::Impossible<(), Error>;
    type SerializeStruct = Record<'s, 'o>;
    type SerializeStructVariant = serde::ser::Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        let w = self.value_branch()?;
        match w.schema {
            Schema::Boolean => {
                w.out.push(u8::from(v));
                Ok(())
            }
            _ => Err(w.mismatch("a boolean")),
        }
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        let w = self.value_branch()?;
        match w.schema {
            Schema::Int => {
                i32::try_from(v).map_err(|_| w.mismatch("a 64-bit int"))?;
                write_long(v, w.out);
                Ok(())
            }
            Schema::Long => {
                write_long(v, w.out);
                Ok(())
            }
            Schema::Decimal(_) => w.serialize_str(&v.to_string()),
            _ => Err(w.mismatch("an integer")),
        }
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        let v = i64::try_from(v).map_err(|_| self.mismatch("an integer over 2^63"))?;
        self.serialize_i64(v)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(self.mismatch("a float"))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(self.mismatch("a float"))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        let w = self.value_branch()?;
        match w.schema {
            Schema::String => {
                write_bytes(v.as_bytes(), w.out);
                Ok(())
            }
            Schema::Enum(e) => {
                let index = e
                    .symbols
                    .iter()
                    .position(|s| s == v)
                    .ok_or_else(|| Error(format!("`{v}` is not one of {:?}", e.symbols)))?;
                write_long(index as i64, w.out);
                Ok(())
            }
            Schema::Date => {
                let date: chrono::NaiveDate = v.parse().map_err(|e| Error(format!("{v}: {e}")))?;
                write_long((date - EPOCH).num_days(), w.out);
                Ok(())
            }
            Schema::Decimal(d) => {
                let decimal: rust_decimal::Decimal =
                    v.parse().map_err(|e| Error(format!("{v}: {e}")))?;
                let bytes = super::avro_json::decimal_to_bytes(decimal, d.scale as u32, "")
                    .map_err(|e| Error(e.to_string()))?;
                write_bytes(&bytes, w.out);
                Ok(())
            }
            _ => Err(w.mismatch("a string")),
        }
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(self.mismatch("bytes"))
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.null()
    }
    fn serialize_some<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self.value_branch()?)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.null()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.null()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(self.mismatch("a newtype variant"))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'s, 'o>, Error> {
        let w = self.value_branch()?;
        let Schema::Array(a) = w.schema else {
            return Err(w.mismatch("a sequence"));
        };
        let len = len.ok_or_else(|| Error("a sequence of unknown length".into()))?;
        if len > 0 {
            write_long(len as i64, w.out);
        }
        Ok(Seq {
            items: &a.items,
            out: w.out,
        })
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(self.mismatch("a tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(self.mismatch("a tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(self.mismatch("a tuple variant"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(self.mismatch("a map"))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Record<'s, 'o>, Error> {
        let w = self.value_branch()?;
        let Schema::Record(r) = w.schema else {
            return Err(w.mismatch("a struct"));
        };
        Ok(Record {
            fields: &r.fields,
            out: w.out,
            next: 0,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(self.mismatch("a struct variant"))
    }
}

pub struct Seq<'s, 'o> {
    items: &'s Schema,
    out: &'o mut Vec<u8>,
}

impl serde::ser::SerializeSeq for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(Writer {
            schema: self.items,
            out: self.out,
        })
    }

    fn end(self) -> Result<(), Error> {
        self.out.push(0);
        Ok(())
    }
}

/// A record's fields, which must come in the schema's order; a field the model skips is
/// written as null (as the JSON form leaves it out).
pub struct Record<'s, 'o> {
    fields: &'s [apache_avro::schema::RecordField],
    out: &'o mut Vec<u8>,
    next: usize,
}

impl<'s> Record<'s, '_> {
    fn expect(&mut self, key: &str) -> Result<&'s apache_avro::schema::RecordField, Error> {
        let field = self
            .fields
            .get(self.next)
            .ok_or_else(|| Error(format!("field `{key}` is not in the schema")))?;
        if field.name != key {
            return Err(Error(format!(
                "field `{key}` where the schema has `{}` next: not in the schema's order",
                field.name
            )));
        }
        self.next += 1;
        Ok(field)
    }
}

impl serde::ser::SerializeStruct for Record<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let field = self.expect(key)?;
        let schema = &field.schema;
        value
            .serialize(Writer {
                schema,
                out: self.out,
            })
            .map_err(|e| {
                Error(format!(
                    ".{key}{}{e}",
                    if e.0.starts_with('.') { "" } else { ": " }
                ))
            })
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), Error> {
        let field = self.expect(key)?;
        let schema = &field.schema;
        Writer {
            schema,
            out: self.out,
        }
        .null()
    }

    fn end(self) -> Result<(), Error> {
        // Fields the model does not have are null, as in the JSON form.
        for field in &self.fields[self.next..] {
            Writer {
                schema: &field.schema,
                out: self.out,
            }
            .null()?;
        }
        Ok(())
    }
}
