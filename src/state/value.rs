//! How typed values are stored: a version byte, then that version's encoding.
//!
//! - Version 1: MessagePack (`rmp-serde`), structs as arrays (no field names), enum variants by
//!   name. A field is only ever appended, with `#[serde(default)]`, so a value written before it
//!   existed reads with the default; removing, renaming or reordering a field needs version 2
//!   and a migration here.
//! - Version 0 (no version byte: the value starts with `{`): the JSON of every condmon before
//!   the stores were split (one value per customer). It still reads.

use serde::Serialize;
use serde::de::DeserializeOwned;

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
}
