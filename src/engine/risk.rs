//! Risk scores: each element of the customer's scoring rule reads one input (a history figure,
//! an aging category, the largest or oldest past-due item, credit-limit use, the balance, a
//! customer or credit-agency figure, a ratio), finds its range and weighs it:
//! `score = range value × weight / 100`, summed over the elements. An input outside every
//! range, missing, dividing by zero or not convertible is reported in the breakdown and scores
//! nothing — never a silent zero.

use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::fx::FxTable;
use super::state::CustomerState;
use super::stats::round;
use crate::model::{
    CustomerKey, ElementStatus, OutputEvent, RiskElement, RiskScoreEvent, event_id, fingerprint,
};
use crate::rules::{
    AgencyField, CustomerField, FiscalPeriod, Options, RuleSet, ScoringElement, ScoringInput,
    ScoringRule,
};

/// A customer's score as last computed (kept in state; an event is emitted when it changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskScore {
    pub rule_id: String,
    pub rule_version: i32,
    pub currency: String,
    #[serde(with = "crate::model::compact::decimal")]
    pub total: Decimal,
    pub complete: bool,
    pub elements: Vec<RiskElement>,
}

/// The fiscal year and period of a date, with fiscal years starting in `start_month` and
/// named by the calendar year they end in.
pub fn fiscal_period(date: NaiveDate, start_month: u32) -> FiscalPeriod {
    let month = date.month();
    let start = start_month.clamp(1, 12);
    let fiscal_year = if start == 1 || month < start {
        date.year()
    } else {
        date.year() + 1
    };
    FiscalPeriod {
        fiscal_year,
        period: ((month + 12 - start) % 12 + 1) as i32,
    }
}

/// The first day of the fiscal period after the one `date` is in.
fn next_period_start(date: NaiveDate) -> Option<NaiveDate> {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
}

/// An element's input: a number, a flag, or why there is none.
enum Input {
    Value(Decimal),
    Flag(bool),
    Missing(ElementStatus, String),
}

struct Scorer<'a> {
    state: &'a CustomerState,
    rule: &'a ScoringRule,
    options: &'a Options,
    fx: &'a FxTable,
    today: NaiveDate,
}

impl Scorer<'_> {
    fn anchor_date(&self) -> NaiveDate {
        self.rule.anchor_date.unwrap_or(self.today)
    }

    fn convert(&self, amount: Decimal, currency: &str) -> Result<Decimal, Input> {
        self.fx
            .convert(
                amount,
                currency,
                &self.rule.currency,
                &self.rule.rate_type,
                self.anchor_date(),
            )
            .map_err(|missing| Input::Missing(ElementStatus::MissingRate, missing.to_string()))
    }

    /// The balance and the past-due amount in the anchor currency (installation options applied).
    fn balances(&self) -> Result<(Decimal, Decimal), Input> {
        let (mut balance, mut past_due) = (Decimal::ZERO, Decimal::ZERO);
        for (currency, totals) in &self.state.totals {
            let mut b = totals.open;
            if self.options.exclude_disputed {
                b -= totals.disputed;
            }
            if self.options.include_unapplied_payments {
                b -= totals.unapplied;
            }
            if self.options.include_in_process_payments {
                b -= totals.in_process;
            }
            balance += self.convert(b, currency)?;
        }
        for item in self
            .state
            .items
            .values()
            .filter(|i| !i.item_type.is_credit() && i.due_date < self.today)
        {
            let open = if self.options.exclude_disputed {
                item.open_amount - item.disputed_amount
            } else {
                item.open_amount
            };
            past_due += self.convert(open, &item.currency)?;
        }
        Ok((balance, past_due))
    }

    /// Credit limit × (1 + percent over / 100) in the anchor currency.
    fn extended_limit(&self) -> Result<Decimal, Input> {
        let customer = self
            .state
            .customer
            .as_ref()
            .ok_or_else(|| missing("no customer master"))?;
        let limit = customer
            .credit_limit
            .ok_or_else(|| missing("the customer has no credit limit"))?;
        let pct = customer.credit_limit_pct_over.unwrap_or_default();
        let limit = self.convert(limit, &customer.currency)?;
        Ok(round(limit * (Decimal::ONE + pct / Decimal::ONE_HUNDRED)))
    }

    fn input(&self, input: &ScoringInput) -> Input {
        match self.try_input(input) {
            Ok(input) | Err(input) => input,
        }
    }

    fn try_input(&self, input: &ScoringInput) -> Result<Input, Input> {
        let agency = || {
            self.state
                .credit_agency
                .as_ref()
                .ok_or_else(|| missing("no credit agency report"))
        };
        let figure = |field: AgencyField| -> Result<Decimal, Input> {
            let report = agency()?;
            let value = match field {
                AgencyField::Sales => report.sales,
                AgencyField::TotalAssets => report.total_assets,
                AgencyField::CurrentAssets => report.current_assets,
                AgencyField::TotalCurrentLiabilities => report.total_current_liabilities,
                AgencyField::NetIncome => report.net_income,
                AgencyField::Inventory => report.inventory,
                AgencyField::Paydex => report.paydex,
            };
            value.ok_or_else(|| missing(&format!("the credit agency report has no {field:?}")))
        };
        let divide =
            |numerator: Decimal, denominator: Decimal, what: &str| -> Result<Decimal, Input> {
                if denominator.is_zero() {
                    return Err(Input::Missing(
                        ElementStatus::DivisionByZero,
                        format!("{what} is zero"),
                    ));
                }
                Ok(round(numerator / denominator))
            };
        Ok(match input {
            ScoringInput::History { history_id } => {
                let period = self.rule.history_period.unwrap_or_else(|| {
                    fiscal_period(self.today, self.options.fiscal_year_start_month)
                });
                let rows: Vec<_> = self
                    .state
                    .history
                    .values()
                    .filter(|h| {
                        &h.history_id == history_id
                            && h.fiscal_year == period.fiscal_year
                            && h.accounting_period == period.period
                    })
                    .collect();
                if rows.is_empty() {
                    return Err(missing(&format!(
                        "no {history_id} history for {}/{}",
                        period.fiscal_year, period.period
                    )));
                }
                let mut sum = Decimal::ZERO;
                for h in rows {
                    sum += match &h.currency {
                        Some(currency) => self.convert(h.value, currency)?,
                        None => h.value,
                    };
                }
                Input::Value(sum)
            }
            ScoringInput::Aging { aging_id, category } => {
                let snapshots: Vec<_> = self
                    .state
                    .aging
                    .values()
                    .filter(|a| &a.aging_id == aging_id)
                    .collect();
                if snapshots.is_empty() {
                    return Err(missing(&format!("no {aging_id} aging for the customer")));
                }
                let mut sum = Decimal::ZERO;
                for snapshot in snapshots {
                    // A category absent from a run had nothing in it.
                    let amount: Decimal = snapshot
                        .buckets
                        .iter()
                        .filter(|b| &b.category == category)
                        .map(|b| b.amount)
                        .sum();
                    sum += self.convert(amount, &snapshot.currency)?;
                }
                Input::Value(sum)
            }
            ScoringInput::LargestPastDueItem => {
                let mut largest = Decimal::ZERO;
                for item in self
                    .state
                    .items
                    .values()
                    .filter(|i| !i.item_type.is_credit() && i.due_date <= self.today)
                {
                    largest = largest.max(self.convert(item.open_amount, &item.currency)?);
                }
                Input::Value(largest)
            }
            ScoringInput::OldestItemPastDue { min_amount } => {
                let mut days = 0_i64;
                for item in self
                    .state
                    .items
                    .values()
                    .filter(|i| !i.item_type.is_credit())
                {
                    if self.convert(item.open_amount, &item.currency)? >= *min_amount {
                        days = days.max((self.today - item.due_date).num_days());
                    }
                }
                Input::Value(Decimal::from(days))
            }
            ScoringInput::ApproachingCreditLimitPercent => {
                let limit = self.extended_limit()?;
                let (balance, _) = self.balances()?;
                Input::Value(divide(
                    balance * Decimal::ONE_HUNDRED,
                    limit,
                    "the credit limit",
                )?)
            }
            ScoringInput::ExceededCreditLimit => {
                let limit = self.extended_limit()?;
                let (balance, _) = self.balances()?;
                Input::Flag(limit - balance < Decimal::ZERO)
            }
            ScoringInput::CreditHold => Input::Flag(
                self.state
                    .customer
                    .as_ref()
                    .ok_or_else(|| missing("no customer master"))?
                    .credit_hold,
            ),
            ScoringInput::BalanceDue => Input::Value(self.balances()?.0),
            ScoringInput::PercentOfBalancePastDue => {
                let (balance, past_due) = self.balances()?;
                Input::Value(divide(
                    past_due * Decimal::ONE_HUNDRED,
                    balance,
                    "the balance",
                )?)
            }
            ScoringInput::CustomerField { field } => {
                let customer = self
                    .state
                    .customer
                    .as_ref()
                    .ok_or_else(|| missing("no customer master"))?;
                match field {
                    CustomerField::CreditLimit => Input::Value(
                        self.convert(
                            customer
                                .credit_limit
                                .ok_or_else(|| missing("the customer has no credit limit"))?,
                            &customer.currency,
                        )?,
                    ),
                    CustomerField::CreditLimitPctOver => {
                        Input::Value(customer.credit_limit_pct_over.unwrap_or_default())
                    }
                }
            }
            ScoringInput::CreditAgencyField { field } => {
                let value = figure(*field)?;
                match field {
                    AgencyField::Paydex => Input::Value(value),
                    _ => Input::Value(self.convert(value, &agency()?.currency)?),
                }
            }
            // Ratios are of figures of one report, in one currency: no conversion.
            ScoringInput::DebtRatio => Input::Value(divide(
                figure(AgencyField::TotalCurrentLiabilities)?,
                figure(AgencyField::CurrentAssets)?,
                "current assets",
            )?),
            ScoringInput::AssetTurnover => Input::Value(divide(
                figure(AgencyField::Sales)?,
                figure(AgencyField::TotalAssets)?,
                "total assets",
            )?),
            ScoringInput::ReturnOnEquity => Input::Value(round(
                divide(
                    figure(AgencyField::NetIncome)?,
                    figure(AgencyField::TotalAssets)?,
                    "total assets",
                )? - figure(AgencyField::TotalCurrentLiabilities)?,
            )),
            ScoringInput::AcidTest => Input::Value(divide(
                figure(AgencyField::TotalAssets)? - figure(AgencyField::Inventory)?,
                figure(AgencyField::TotalCurrentLiabilities)?,
                "total current liabilities",
            )?),
        })
    }

    fn element(&self, element: &ScoringElement) -> RiskElement {
        let mut out = RiskElement {
            name: element.name.clone(),
            group: element.input.group().to_string(),
            status: ElementStatus::Scored,
            input_value: None,
            input_flag: None,
            range_low: None,
            range_high: None,
            range_value: None,
            weight: element.weight,
            score: Decimal::ZERO,
            detail: None,
        };
        let value = match self.input(&element.input) {
            Input::Missing(status, detail) => {
                out.status = status;
                out.detail = Some(detail);
                return out;
            }
            Input::Flag(yes) => {
                out.input_flag = Some(if yes { "Y" } else { "N" }.to_string());
                let flag = element
                    .flag
                    .as_ref()
                    .expect("validated: flag elements have values");
                if yes { flag.yes } else { flag.no }
            }
            Input::Value(value) => {
                let value = round(value);
                out.input_value = Some(value);
                match element
                    .ranges
                    .iter()
                    .find(|r| r.low <= value && value <= r.high)
                {
                    Some(range) => {
                        out.range_low = Some(range.low);
                        out.range_high = Some(range.high);
                        range.value
                    }
                    None => {
                        out.status = ElementStatus::NoRange;
                        out.detail = Some(format!("{value} is outside every range"));
                        return out;
                    }
                }
            }
        };
        out.range_value = Some(value);
        out.score = round(value * element.weight / Decimal::ONE_HUNDRED);
        out
    }
}

fn missing(detail: &str) -> Input {
    Input::Missing(ElementStatus::MissingInput, detail.to_string())
}

/// The customer's score under `rule` on `today`.
pub fn score(
    state: &CustomerState,
    rule: &ScoringRule,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> RiskScore {
    let scorer = Scorer {
        state,
        rule,
        options: &rules.options,
        fx,
        today,
    };
    let elements: Vec<RiskElement> = rule.elements.iter().map(|e| scorer.element(e)).collect();
    RiskScore {
        rule_id: rule.id.clone(),
        rule_version: rules.version as i32,
        currency: rule.currency.clone(),
        total: elements.iter().map(|e| e.score).sum(),
        complete: elements.iter().all(|e| e.status == ElementStatus::Scored),
        elements,
    }
}

/// The scoring rule of a customer under the rule set (override, or by level).
pub fn rule_for<'r>(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &'r RuleSet,
) -> Option<&'r ScoringRule> {
    rules.scoring_rule_for(&key.set_id, &key.customer_id, state.group())
}

/// Re-scores the customer; an event when the total or an element changed.
pub fn rescore(
    state: &mut CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> Option<OutputEvent> {
    let new = rule_for(state, key, rules).map(|rule| score(state, rule, rules, fx, today));
    if new == state.risk {
        return None;
    }
    state.risk = new;
    let score = state.risk.as_ref()?;
    state.risk_seq += 1;
    let digest = fingerprint(&[serde_json::to_string(score)
        .expect("score serializes")
        .as_bytes()]);
    Some(OutputEvent::RiskScore(RiskScoreEvent {
        event_id: event_id(&[
            "risk-score",
            &key.set_id,
            &key.customer_id,
            &state.risk_seq.to_string(),
            &digest.to_string(),
        ]),
        set_id: key.set_id.clone(),
        customer_id: key.customer_id.clone(),
        rule_id: score.rule_id.clone(),
        rule_version: score.rule_version,
        currency: score.currency.clone(),
        total: score.total,
        complete: score.complete,
        elements: score.elements.clone(),
        business_date: today,
    }))
}

/// The first date after `today` on which time alone can change the customer's score: an item
/// falling past due, the oldest item's days crossing into another range, a new fiscal period
/// for history elements, a newer exchange rate.
pub fn next_change(
    state: &CustomerState,
    key: &CustomerKey,
    rules: &RuleSet,
    fx: &FxTable,
    today: NaiveDate,
) -> Option<NaiveDate> {
    let rule = rule_for(state, key, rules)?;
    let mut dates: Vec<NaiveDate> = Vec::new();
    let debits = || state.items.values().filter(|i| !i.item_type.is_credit());
    for element in &rule.elements {
        match &element.input {
            ScoringInput::LargestPastDueItem => dates.extend(debits().map(|i| i.due_date)),
            ScoringInput::PercentOfBalancePastDue => {
                dates.extend(debits().map(|i| i.due_date + Duration::days(1)))
            }
            ScoringInput::OldestItemPastDue { .. } => {
                // Days grow by one a day; the score moves only when they cross a range edge.
                // A day count enters a range on its first whole day and leaves after its last.
                let edges: Vec<i64> = element
                    .ranges
                    .iter()
                    .flat_map(|r| [r.low.ceil(), r.high.floor() + Decimal::ONE])
                    .filter_map(|d| i64::try_from(d).ok())
                    .collect();
                for item in debits() {
                    let days = (today - item.due_date).num_days();
                    if let Some(edge) = edges.iter().filter(|e| **e > days).min() {
                        dates.push(today + Duration::days(edge - days));
                    }
                }
            }
            ScoringInput::History { .. } if rule.history_period.is_none() => {
                dates.extend(next_period_start(today))
            }
            _ => {}
        }
    }
    if rule.anchor_date.is_none() {
        dates.extend(
            state
                .currencies()
                .into_iter()
                .filter(|c| *c != rule.currency)
                .filter_map(|c| fx.next_change(&rule.rate_type, c, &rule.currency, today)),
        );
    }
    dates.into_iter().filter(|d| *d > today).min()
}
