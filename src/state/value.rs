//! How typed values are stored: a version byte, then that version's encoding.
//!
//! - Version 1: MessagePack (`rmp-serde`), structs as arrays (no field names), enum variants by
//!   name. A field is only ever appended, with `#[serde(default)]`, so a value written before it
//!   existed reads with the default; removing, renaming or reordering a field needs version 2
//!   and a migration here.
//! - Version 0 (no version byte: the value starts with `{`): the JSON of every condmon before
//!   the stores were split (one value per customer). It still reads.

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny, SeqAccess, Visitor};

/// The version every value is written in.
pub const CURRENT: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_sized(value, 256)
}

/// [`encode`] into a buffer of `capacity` bytes (what it encoded to last time: a value mostly
/// keeps its size, and growing the buffer copied a customer's ledger several times).
pub fn encode_sized<T: Serialize>(value: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.push(CURRENT);
    // Writing into memory fails only for a type serde cannot express, a defect caught by tests.
    rmp_serde::encode::write(&mut out, value).expect("state values encode");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.first() {
        Some(1) => rmp_serde::from_slice(&bytes[1..]).map_err(|e| format!("version 1: {e}")),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| format!("version 0 (JSON): {e}")),
        Some(version) => Err(format!("unknown value version {version}")),
        None => Err("empty value".into()),
    }
}

/// The names of a stored struct's fields in the order a version 1 value holds them (as serde's
/// derive declares them), for a view that decodes a few fields of a large value and skips the
/// others without building them ([`read_fields`]).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    // The derive hands its field list to `deserialize_struct`: catch it there.
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Names<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("names read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut names));
    names
}

/// Walks a stored struct's fields (`names`, from [`field_names`]) through `field`, which
/// decodes the ones it wants and skips the others (`Ok(None)`: the value ended there, written
/// before that field was appended); fields appended after this build are skipped.
pub fn read_fields<'de, A: SeqAccess<'de>>(
    mut seq: A,
    names: &[&str],
    mut field: impl FnMut(&str, &mut A) -> Result<Option<()>, A::Error>,
) -> Result<(), A::Error> {
    for name in names {
        if field(name, &mut seq)?.is_none() {
            return Ok(());
        }
    }
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips one field in [`read_fields`].
pub fn skip_field<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Option<()>, A::Error> {
    Ok(seq.next_element::<IgnoredAny>()?.map(drop))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Before {
        id: String,
        amount: rust_decimal::Decimal,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct After {
        id: String,
        amount: rust_decimal::Decimal,
        #[serde(default)]
        note: Option<String>,
    }

    #[test]
    fn a_value_written_before_a_field_was_appended_reads_with_its_default() {
        let bytes = encode(&Before {
            id: "A".into(),
            amount: "12.50".parse().unwrap(),
        });
        assert_eq!(bytes[0], CURRENT);
        assert_eq!(
            decode::<After>(&bytes).unwrap(),
            After {
                id: "A".into(),
                amount: "12.50".parse().unwrap(),
                note: None
            }
        );
        let json = br#"{"id": "A", "amount": "12.50"}"#;
        assert_eq!(decode::<Before>(json).unwrap().amount.to_string(), "12.50");
        assert!(decode::<Before>(&[9, 1]).unwrap_err().contains("version 9"));
    }

    /// A view of `note` alone, as the restore's views read ledgers and actions.
    #[derive(Debug, PartialEq)]
    struct NoteView(Option<String>);

    impl<'de> Deserialize<'de> for NoteView {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Fields;
            impl<'de> Visitor<'de> for Fields {
                type Value = NoteView;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a stored After")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NoteView, A::Error> {
                    let mut note = None;
                    read_fields(seq, field_names::<After>(), |name, seq| match name {
                        "note" => Ok(seq.next_element()?.map(|v| note = v)),
                        _ => skip_field(seq),
                    })?;
                    Ok(NoteView(note))
                }
            }
            d.deserialize_seq(Fields)
        }
    }

    #[test]
    fn a_view_reads_its_fields_by_name_from_values_older_and_newer_than_it() {
        assert_eq!(field_names::<After>(), ["id", "amount", "note"]);
        let after = After {
            id: "A".into(),
            amount: "1".parse().unwrap(),
            note: Some("kept".into()),
        };
        assert_eq!(
            decode::<NoteView>(&encode(&after)).unwrap(),
            NoteView(Some("kept".into()))
        );
        // Written before `note` was appended: its default.
        let before = Before {
            id: "A".into(),
            amount: "1".parse().unwrap(),
        };
        assert_eq!(
            decode::<NoteView>(&encode(&before)).unwrap(),
            NoteView(None)
        );
        // Written after more fields were appended: they are skipped.
        let newer = (String::from("A"), "1", Some("kept"), 42u32, vec!["more"]);
        assert_eq!(
            decode::<NoteView>(&encode(&newer)).unwrap(),
            NoteView(Some("kept".into()))
        );
    }
}
