//! Exchange rates: reference data every customer shares, read from a compacted topic.
//!
//! A rate is in force from its effective date until the next rate of the same type and pair.
//! An inverse rate is used when only the opposite direction is published. A missing rate is
//! never a zero: conversion answers [`MissingRate`] and the rule is reported as blocked.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::model::FxRate;

/// Converted amounts are rounded to the scale amounts travel in (Avro decimal, scale 4).
pub const AMOUNT_SCALE: u32 = 4;

type Pair = (String, String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FxTable {
    /// (rate type, from, to) → effective date → rate.
    rates: BTreeMap<Pair, BTreeMap<NaiveDate, Decimal>>,
}

/// No rate of `rate_type` from `from` to `to` is in force on `on`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingRate {
    pub from: String,
    pub to: String,
    pub rate_type: String,
    pub on: NaiveDate,
}

impl std::fmt::Display for MissingRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The date is left out: a flag stays the same flag while the business date moves.
        write!(
            f,
            "no {} rate from {} to {}",
            self.rate_type, self.from, self.to
        )
    }
}

fn pair(rate_type: &str, from: &str, to: &str) -> Pair {
    (rate_type.to_string(), from.to_string(), to.to_string())
}

impl FxTable {
    pub fn insert(&mut self, rate: &FxRate) {
        self.rates
            .entry(pair(
                &rate.rate_type,
                &rate.from_currency,
                &rate.to_currency,
            ))
            .or_default()
            .insert(rate.effective_date, rate.rate);
    }

    /// Removes the rate a compacted-topic tombstone names (key `TYPE|FROM|TO|DATE`).
    pub fn remove(&mut self, rate_type: &str, from: &str, to: &str, effective: NaiveDate) {
        if let Some(dates) = self.rates.get_mut(&pair(rate_type, from, to)) {
            dates.remove(&effective);
        }
    }

    /// The latest rate of the pair in effect on `on`, with its effective date.
    fn latest(
        &self,
        rate_type: &str,
        from: &str,
        to: &str,
        on: NaiveDate,
    ) -> Option<(NaiveDate, Decimal)> {
        self.rates
            .get(&pair(rate_type, from, to))?
            .range(..=on)
            .next_back()
            .map(|(date, rate)| (*date, *rate))
    }

    /// The rate in force on `on`: the latest published in either direction (direct on a
    /// tie), inverted when it is the other direction's; 1 between a currency and itself.
    pub fn rate(&self, rate_type: &str, from: &str, to: &str, on: NaiveDate) -> Option<Decimal> {
        if from == to {
            return Some(Decimal::ONE);
        }
        let direct = self.latest(rate_type, from, to, on);
        let inverse = self.latest(rate_type, to, from, on);
        match (direct, inverse) {
            (Some((d, rate)), Some((i, _))) if d >= i => Some(rate),
            (Some((_, rate)), None) => Some(rate),
            (_, Some((_, inverse))) => Decimal::ONE.checked_div(inverse),
            (None, None) => None,
        }
    }

    /// `amount` in `to`, rounded half away from zero to [`AMOUNT_SCALE`] places.
    pub fn convert(
        &self,
        amount: Decimal,
        from: &str,
        to: &str,
        rate_type: &str,
        on: NaiveDate,
    ) -> Result<Decimal, MissingRate> {
        if from == to {
            return Ok(amount);
        }
        let missing = || MissingRate {
            from: from.to_string(),
            to: to.to_string(),
            rate_type: rate_type.to_string(),
            on,
        };
        let rate = self.rate(rate_type, from, to, on).ok_or_else(missing)?;
        let converted = amount.checked_mul(rate).ok_or_else(missing)?;
        Ok(converted.round_dp_with_strategy(AMOUNT_SCALE, RoundingStrategy::MidpointAwayFromZero))
    }

    /// The first date after `after` on which a rate between the two currencies (either
    /// direction) takes effect: when a conversion can change by time alone.
    pub fn next_change(
        &self,
        rate_type: &str,
        a: &str,
        b: &str,
        after: NaiveDate,
    ) -> Option<NaiveDate> {
        [pair(rate_type, a, b), pair(rate_type, b, a)]
            .iter()
            .filter_map(|p| {
                self.rates
                    .get(p)?
                    .range(after.succ_opt()?..)
                    .next()
                    .map(|(d, _)| *d)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn rate(from: &str, to: &str, on: &str, r: &str) -> FxRate {
        FxRate {
            rate_type: "CRRNT".into(),
            from_currency: from.into(),
            to_currency: to.into(),
            effective_date: d(on),
            rate: r.parse().unwrap(),
        }
    }

    #[test]
    fn the_rate_in_force_is_the_latest_effective_on_or_before_the_date() {
        let mut fx = FxTable::default();
        fx.insert(&rate("EUR", "USD", "2026-01-01", "1.10"));
        fx.insert(&rate("EUR", "USD", "2026-02-01", "1.20"));
        let usd = |on| fx.convert("100".parse().unwrap(), "EUR", "USD", "CRRNT", d(on));
        assert_eq!(
            usd("2025-12-31").unwrap_err().to_string(),
            "no CRRNT rate from EUR to USD"
        );
        assert_eq!(usd("2026-01-01"), Ok("110.00".parse().unwrap()));
        assert_eq!(usd("2026-01-31"), Ok("110.00".parse().unwrap()));
        assert_eq!(usd("2026-02-01"), Ok("120.00".parse().unwrap()));
        assert_eq!(
            fx.next_change("CRRNT", "USD", "EUR", d("2026-01-15")),
            Some(d("2026-02-01"))
        );
        assert_eq!(fx.next_change("CRRNT", "USD", "EUR", d("2026-02-01")), None);
        assert!(
            fx.convert(Decimal::ONE, "EUR", "USD", "AVG", d("2026-03-01"))
                .is_err(),
            "rate types are separate"
        );
    }

    #[test]
    fn an_inverse_rate_serves_the_other_direction_rounded_to_four_places() {
        let mut fx = FxTable::default();
        fx.insert(&rate("USD", "JPY", "2026-01-01", "150"));
        assert_eq!(
            fx.convert(
                "1000".parse().unwrap(),
                "JPY",
                "USD",
                "CRRNT",
                d("2026-06-01")
            ),
            Ok("6.6667".parse().unwrap())
        );
        fx.remove("CRRNT", "USD", "JPY", d("2026-01-01"));
        assert!(
            fx.convert(Decimal::ONE, "JPY", "USD", "CRRNT", d("2026-06-01"))
                .is_err()
        );
        assert_eq!(
            fx.convert(Decimal::TEN, "USD", "USD", "CRRNT", d("2026-06-01")),
            Ok(Decimal::TEN)
        );
    }
}
