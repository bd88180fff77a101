//! Compact forms of amounts and dates for binary formats (the state's MessagePack values): a
//! `Decimal` as its 16 bytes, a `NaiveDate` as days since 1970-01-01. Human-readable formats
//! (JSON: the replay format, the HTTP API, the Avro bridge, values of the layout before the
//! split) keep the strings, so only the state's encoding changes. Used on fields as
//! `#[serde(with = "compact::decimal")]` (and `optional_decimal`, `date`, `optional_date`).

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 1970-01-01 counted from 0001-01-01 (day 1): dates are stored as days since 1970, and
/// chrono's day count from the common era converts without calendar arithmetic (the
/// subtraction and addition of durations this replaces were 4 % of the hot path).
const EPOCH_FROM_CE: i32 = 719_163;

fn days(date: &NaiveDate) -> i32 {
    date.num_days_from_ce() - EPOCH_FROM_CE
}

fn from_days<E: serde::de::Error>(days: i32) -> Result<NaiveDate, E> {
    days.checked_add(EPOCH_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
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

    proptest::proptest! {
        /// The stored number of a date is the one values were written with (days since
        /// 1970-01-01 by calendar subtraction), and reads back as the same date.
        #[test]
        fn a_date_is_stored_as_the_days_since_1970_it_always_was(day in -800_000i32..2_000_000) {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let Some(date) = epoch.checked_add_signed(chrono::Duration::days(i64::from(day))) else {
                return Ok(());
            };
            proptest::prop_assert_eq!(super::days(&date), (date - epoch).num_days() as i32);
            proptest::prop_assert_eq!(super::from_days::<serde_json::Error>(day).unwrap(), date);
        }
    }

    #[test]
    fn a_day_count_beyond_the_calendar_is_an_error_not_a_panic() {
        assert!(super::from_days::<serde_json::Error>(i32::MAX).is_err());
        assert!(super::from_days::<serde_json::Error>(i32::MIN).is_err());
    }
}
