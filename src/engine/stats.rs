//! Statistics condmon keeps itself from item and payment events, over a rolling window of
//! days: average days late, weighted average days late, days sales outstanding and the number
//! of NSF payments. The batch system reads such figures from history tables refreshed
//! nightly; here they move with every payment, and a sample leaving the window re-evaluates
//! the customer by timer.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{ItemChange, ItemType, PaymentChange, PaymentStatus};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    /// Payments by payment id: when they were made and how late each application paid.
    pub payments: BTreeMap<String, PaymentSample>,
    /// Invoices and debit memos by item key (sales, for DSO).
    pub sales: BTreeMap<String, Sale>,
    /// Due dates of items closed recently (item key → due date, closed on), so a payment read
    /// after its item closed still knows how late it was.
    pub closed: BTreeMap<String, (NaiveDate, NaiveDate)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentSample {
    #[serde(with = "crate::model::compact::date")]
    pub date: NaiveDate,
    pub currency: String,
    pub nsf: bool,
    /// (days late, amount) per application to an item whose due date is known.
    pub applications: Vec<(i64, Decimal)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sale {
    #[serde(with = "crate::model::compact::date")]
    pub date: NaiveDate,
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub amount: Decimal,
}

/// What an item adds to the sales (invoices and debit memos), for DSO.
fn sale_of(item: &ItemChange) -> Option<Sale> {
    matches!(item.item_type, ItemType::Invoice | ItemType::DebitMemo).then(|| Sale {
        date: item.accounting_date,
        currency: item.currency.clone(),
        amount: item.original_amount,
    })
}

/// A statistic's value and how many samples it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct StatValue {
    pub value: Decimal,
    pub samples: usize,
}

impl Statistics {
    /// Sales count on the item's accounting date; closed items keep their due date a while.
    pub fn record_item(&mut self, key: &str, item: &ItemChange, today: NaiveDate) {
        if let Some(sale) = sale_of(item) {
            self.sales.insert(key.to_string(), sale);
        }
        if item.open_amount.is_zero() {
            // A closed item sent again later (an extract that includes closed items) keeps the
            // day it closed: its due date is kept for the window from that day, not renewed.
            match self.closed.get_mut(key) {
                Some((due, _)) => *due = item.due_date,
                None => {
                    self.closed.insert(key.to_string(), (item.due_date, today));
                }
            }
        } else {
            self.closed.remove(key);
        }
    }

    /// Whether [`Statistics::record_item`] of this open item would change nothing: its sale
    /// (if it is one) recorded as it says, amount to the same scale, and it not closed.
    pub fn holds_open_item(&self, key: &str, item: &ItemChange) -> bool {
        let sale_held = match sale_of(item) {
            None => true,
            Some(sale) => self
                .sales
                .get(key)
                .is_some_and(|held| *held == sale && held.amount.scale() == sale.amount.scale()),
        };
        sale_held && !item.open_amount.is_zero() && !self.closed.contains_key(key)
    }

    pub fn closed_due_date(&self, key: &str) -> Option<NaiveDate> {
        self.closed.get(key).map(|(due, _)| *due)
    }

    /// Re-sending a payment replaces its sample; a cancelled payment leaves none.
    pub fn record_payment(&mut self, payment: &PaymentChange, due_dates: &[Option<NaiveDate>]) {
        if payment.status == PaymentStatus::Cancelled {
            self.payments.remove(&payment.payment_id);
            return;
        }
        let nsf = payment.status == PaymentStatus::Nsf;
        let applications = if nsf {
            Vec::new()
        } else {
            payment
                .applications
                .iter()
                .zip(due_dates)
                .filter_map(|(a, due)| {
                    Some(((payment.payment_date - (*due)?).num_days(), a.amount))
                })
                .collect()
        };
        self.payments.insert(
            payment.payment_id.clone(),
            PaymentSample {
                date: payment.payment_date,
                currency: payment.currency.clone(),
                nsf,
                applications,
            },
        );
    }

    /// Drops what has left the window ending `today`.
    pub fn prune(&mut self, today: NaiveDate, window_days: u32) {
        let start = window_start(today, window_days);
        self.payments.retain(|_, p| p.date >= start);
        self.sales.retain(|_, s| s.date >= start);
        self.closed.retain(|_, (_, closed_on)| *closed_on >= start);
    }

    /// The first date after `today` on which a sample enters (dated later) or leaves the
    /// window.
    pub fn next_expiry(&self, today: NaiveDate, window_days: u32) -> Option<NaiveDate> {
        let leaves = |date: NaiveDate| date + Duration::days(i64::from(window_days));
        self.payments
            .values()
            .map(|p| p.date)
            .chain(self.sales.values().map(|s| s.date))
            .flat_map(|date| [date, leaves(date)])
            .filter(|d| *d > today)
            .min()
    }

    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.payments
            .values()
            .map(|p| p.currency.as_str())
            .chain(self.sales.values().map(|s| s.currency.as_str()))
    }

    fn in_window(
        &self,
        today: NaiveDate,
        window_days: u32,
    ) -> impl Iterator<Item = &PaymentSample> {
        let start = window_start(today, window_days);
        self.payments
            .values()
            .filter(move |p| p.date >= start && p.date <= today)
    }

    /// Mean days late over the payment applications in the window.
    pub fn average_days_late(&self, today: NaiveDate, window_days: u32) -> Option<StatValue> {
        let days: Vec<i64> = self
            .in_window(today, window_days)
            .flat_map(|p| p.applications.iter().map(|(d, _)| *d))
            .collect();
        if days.is_empty() {
            return None;
        }
        let value = Decimal::from(days.iter().sum::<i64>()) / Decimal::from(days.len());
        Some(StatValue {
            value: round(value),
            samples: days.len(),
        })
    }

    /// Days late weighted by the amount paid, each amount converted by `convert` (to the
    /// rule's anchor currency).
    pub fn weighted_days_late(
        &self,
        today: NaiveDate,
        window_days: u32,
        convert: &mut dyn FnMut(Decimal, &str) -> Decimal,
    ) -> Option<StatValue> {
        let (mut weighted, mut total, mut samples) = (Decimal::ZERO, Decimal::ZERO, 0);
        for p in self.in_window(today, window_days) {
            for (days, amount) in &p.applications {
                let amount = convert(*amount, &p.currency);
                weighted += Decimal::from(*days) * amount;
                total += amount;
                samples += 1;
            }
        }
        (!total.is_zero()).then(|| StatValue {
            value: round(weighted / total),
            samples,
        })
    }

    /// Sales in the window, converted by `convert`, and how many.
    pub fn sales(
        &self,
        today: NaiveDate,
        window_days: u32,
        convert: &mut dyn FnMut(Decimal, &str) -> Decimal,
    ) -> (Decimal, usize) {
        let start = window_start(today, window_days);
        let mut total = Decimal::ZERO;
        let mut count = 0;
        for s in self
            .sales
            .values()
            .filter(|s| s.date >= start && s.date <= today)
        {
            total += convert(s.amount, &s.currency);
            count += 1;
        }
        (total, count)
    }

    /// NSF payments in the window.
    pub fn nsf_count(&self, today: NaiveDate, window_days: u32) -> StatValue {
        let count = self.in_window(today, window_days).filter(|p| p.nsf).count();
        StatValue {
            value: Decimal::from(count),
            samples: count,
        }
    }
}

/// The first day of the window of `window_days` days ending `today` (inclusive).
fn window_start(today: NaiveDate, window_days: u32) -> NaiveDate {
    today - Duration::days(i64::from(window_days) - 1)
}

/// Statistics travel with 4 decimal places, like amounts.
pub fn round(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(
        super::fx::AMOUNT_SCALE,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CustomerKey;

    #[test]
    fn a_closed_item_sent_again_later_keeps_the_day_it_closed() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let key = CustomerKey::new("SHARE", "C1");
        let mut item = ItemChange::invoice(&key, "US001", "INV-1", 100.into(), "USD", day(1));
        item.open_amount = Decimal::ZERO;
        let mut stats = Statistics::default();
        stats.record_item("INV-1#0", &item, day(10));
        item.due_date = day(2);
        stats.record_item("INV-1#0", &item, day(20));
        assert_eq!(
            stats.closed["INV-1#0"],
            (day(2), day(10)),
            "the due date as last sent"
        );
        // It leaves the window counted from the day it closed, as if it had been sent once.
        stats.prune(day(10) + Duration::days(31), 30);
        assert!(stats.closed.is_empty());
        // Reopened, then closed again: a new closing day.
        item.open_amount = 50.into();
        stats.record_item("INV-1#0", &item, day(21));
        item.open_amount = Decimal::ZERO;
        stats.record_item("INV-1#0", &item, day(22));
        assert_eq!(stats.closed["INV-1#0"], (day(2), day(22)));
    }
}
