//! Compact forms of amounts and dates for binary formats (the state's MessagePack values): a
//! `Decimal` as its 16 bytes, a `NaiveDate` as days since 1970-01-01. Human-readable formats
//! (JSON: the replay format, the HTTP API, the Avro bridge, values of the layout before the
//! split) keep the strings, so only the state's encoding changes. Used on fields as
//! `#[serde(with = "compact::decimal")]` (and `optional_decimal`, `date`, `optional_date`).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
}

fn days(date: &NaiveDate) -> i32 {
    (*date - epoch()).num_days() as i32
}

fn from_days<E: serde::de::Error>(days: i32) -> Result<NaiveDate, E> {
    epoch()
        .checked_add_signed(chrono::Duration::days(i64::from(days)))
        .ok_or_else(|| E::custom(format!("{days} days is not a date")))
}

fn from_bytes<E: serde::de::Error>(bytes: &[u8]) -> Result<Decimal, E> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| E::custom(format!("a decimal of {} bytes", bytes.len())))?;
    Ok(Decimal::deserialize(bytes))
}

pub mod decimal {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            Serialize::serialize(value, s)
        } else {
            s.serialize_bytes(&Decimal::serialize(value))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        if d.is_human_readable() {
            <Decimal as Deserialize>::deserialize(d)
        } else {
            DecimalBytes::deserialize(d).map(|b| b.0)
        }
    }
}

pub mod optional_decimal {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            value.serialize(s)
        } else {
            value.map(DecimalBytes).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        if d.is_human_readable() {
            Option::<Decimal>::deserialize(d)
        } else {
            Ok(Option::<DecimalBytes>::deserialize(d)?.map(|b| b.0))
        }
    }
}

pub mod date {
    use super::*;

    pub fn serialize<S: Serializer>(value: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            value.serialize(s)
        } else {
            s.serialize_i32(days(value))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        if d.is_human_readable() {
            NaiveDate::deserialize(d)
        } else {
            from_days(i32::deserialize(d)?)
        }
    }
}

pub mod optional_date {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            value.serialize(s)
        } else {
            value.as_ref().map(days).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        if d.is_human_readable() {
            Option::<NaiveDate>::deserialize(d)
        } else {
            Option::<i32>::deserialize(d)?.map(from_days).transpose()
        }
    }
}

/// A decimal as serde's byte-string type (its 16 bytes, not a sequence of numbers), read
/// from the borrowed bytes: amounts are most of a state value, and each once took a `Vec`.
struct DecimalBytes(Decimal);

impl Serialize for DecimalBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&Decimal::serialize(&self.0))
    }
}

impl<'de> Deserialize<'de> for DecimalBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = DecimalBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal's 16 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<DecimalBytes, E> {
                from_bytes(v).map(DecimalBytes)
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "super::decimal")]
        amount: rust_decimal::Decimal,
        #[serde(with = "super::optional_decimal")]
        limit: Option<rust_decimal::Decimal>,
        #[serde(with = "super::date")]
        due: chrono::NaiveDate,
        #[serde(with = "super::optional_date")]
        closed: Option<chrono::NaiveDate>,
    }

    #[test]
    fn binary_formats_get_bytes_and_days_json_keeps_its_strings() {
        let sample = Sample {
            amount: "-1234.5600".parse().unwrap(),
            limit: Some("0.0001".parse().unwrap()),
            due: "1969-12-31".parse().unwrap(),
            closed: None,
        };
        let json = serde_json::to_value(&sample).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount": "-1234.5600", "limit": "0.0001", "due": "1969-12-31", "closed": null})
        );
        assert_eq!(serde_json::from_value::<Sample>(json).unwrap(), sample);
        let binary = crate::state::value::encode(&sample);
        assert!(binary.len() < 60, "{} bytes", binary.len());
        let back: Sample = crate::state::value::decode(&binary).unwrap();
        assert_eq!(back, sample);
        assert_eq!(back.amount.to_string(), "-1234.5600", "the scale survives");
    }
}
