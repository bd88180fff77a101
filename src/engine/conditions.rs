//! The condition catalog: each condition as a pure evaluation of a customer's state (or of
//! one of its items) in a rule's anchor currency, giving a [`Verdict`] with its evidence.

use std::cell::RefCell;
use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate};
use itertools::{Either, EitherOrBoth, Itertools};
use rust_decimal::Decimal;

use super::children::ChildLedger;
use super::fx::{FxTable, MissingRate};
use super::state::{CustomerState, Totals, item_key};
use super::stats::{self, StatValue};
use crate::model::{BucketAmount, Evidence, ItemChange, ItemEvidence, ItemType, StatisticEvidence};
use crate::rules::{
    Aggregate, AssessmentRule, Check, CollectionRule, Options, RuleSet, StatisticSource,
};

/// What a rule says about a customer (or an item) today.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Violated(Evidence),
    Clear(Evidence),
    /// The rule cannot be evaluated: each string says what is missing.
    Blocked(Vec<String>),
}

impl Verdict {
    pub fn is_violated(&self) -> bool {
        matches!(self, Verdict::Violated(_))
    }
}

/// Everything a condition is evaluated against.
pub struct Context<'a> {
    /// The customer's own state (master, risk, statistics, history; items and totals are read
    /// through [`Context::items`] and [`Context::totals`]).
    pub state: &'a CustomerState,
    /// For a rule monitoring a relationship: the children's lines and the totals with them.
    children: Option<&'a ChildLedger>,
    pub rules: &'a RuleSet,
    pub fx: &'a FxTable,
    pub today: NaiveDate,
    /// The customer's figures per anchor, computed once for all the rules that share it.
    figures: RefCell<Vec<(AnchorKey, Evidence, BTreeSet<MissingRate>)>>,
}

/// An anchor by value: (currency, rate type, date).
type AnchorKey = (String, String, NaiveDate);

impl<'a> Context<'a> {
    pub fn new(
        state: &'a CustomerState,
        rules: &'a RuleSet,
        fx: &'a FxTable,
        today: NaiveDate,
    ) -> Self {
        Self::with_children(state, None, rules, fx, today)
    }

    /// The context of a rule monitoring a relationship: the customer's own ledger with its
    /// children's lines.
    pub fn with_children(
        state: &'a CustomerState,
        children: Option<&'a ChildLedger>,
        rules: &'a RuleSet,
        fx: &'a FxTable,
        today: NaiveDate,
    ) -> Self {
        Context {
            state,
            children,
            rules,
            fx,
            today,
            figures: RefCell::new(Vec::new()),
        }
    }

    /// The open items the rule sees by item key, in key order: the customer's own, merged
    /// with its children's lines for a relationship (a child's line, `CHILD/ITEM`, stands for
    /// an own item of the same key, as when the lines were inserted into a copy).
    pub fn keyed_items(&self) -> impl Iterator<Item = (&'a String, &'a ItemChange)> + use<'a> {
        let own = self.state.items.iter();
        // The customer's own rules (nearly all) iterate without the merge's comparisons.
        match self.children {
            None => Either::Left(own),
            Some(children) => Either::Right(
                own.merge_join_by(&children.items, |own, child| own.0.cmp(child.0))
                    .map(|pair| match pair {
                        EitherOrBoth::Left(own) => own,
                        EitherOrBoth::Right(child) | EitherOrBoth::Both(_, child) => child,
                    }),
            ),
        }
    }

    /// The open item of `key` the rule sees (a child's line, or the customer's own).
    pub fn item(&self, key: &str) -> Option<&'a ItemChange> {
        self.children
            .and_then(|c| c.items.get(key))
            .or_else(|| self.state.items.get(key))
    }

    /// [`Context::keyed_items`] without their keys.
    pub fn items(&self) -> impl Iterator<Item = &'a ItemChange> + use<'a> {
        self.keyed_items().map(|(_, item)| item)
    }

    /// Balance components by currency, the children's included for a relationship.
    pub fn totals(&self) -> &'a super::state::SortedMap<Totals> {
        self.children.map_or(&self.state.totals, |c| &c.totals)
    }
}

impl Context<'_> {
    fn options(&self) -> &Options {
        &self.rules.options
    }
}

/// The currency, rate type and date amounts are converted with.
#[derive(Debug, Clone, Copy)]
pub struct Anchor<'r> {
    pub currency: &'r str,
    pub rate_type: &'r str,
    pub on: NaiveDate,
}

impl<'r> Anchor<'r> {
    pub fn of_collection(rule: &'r CollectionRule, today: NaiveDate) -> Self {
        Anchor {
            currency: &rule.currency,
            rate_type: &rule.rate_type,
            on: rule.anchor_date.unwrap_or(today),
        }
    }

    pub fn of_assessment(rule: &'r AssessmentRule, today: NaiveDate) -> Self {
        Anchor {
            currency: &rule.currency,
            rate_type: &rule.rate_type,
            on: rule.anchor_date.unwrap_or(today),
        }
    }
}

/// Converts amounts to the anchor, remembering every rate that was missing.
struct Converter<'a> {
    fx: &'a FxTable,
    anchor: Anchor<'a>,
    missing: BTreeSet<MissingRate>,
}

impl Converter<'_> {
    fn convert(&mut self, amount: Decimal, currency: &str) -> Decimal {
        match self.fx.convert(
            amount,
            currency,
            self.anchor.currency,
            self.anchor.rate_type,
            self.anchor.on,
        ) {
            Ok(converted) => converted,
            Err(missing) => {
                self.missing.insert(missing);
                Decimal::ZERO
            }
        }
    }

    fn blocked(&self) -> Option<Verdict> {
        (!self.missing.is_empty())
            .then(|| Verdict::Blocked(self.missing.iter().map(ToString::to_string).collect()))
    }
}

/// The customer's figures in an anchor currency, after the installation options.
#[derive(Debug, Clone, Default)]
struct Figures {
    balance: Decimal,
    /// Open credits and (by option) cash: set against what is late.
    credits_and_cash: Decimal,
    disputed: Decimal,
    unapplied: Decimal,
    in_process: Decimal,
    other_currencies: i32,
}

fn days_past_due(item: &ItemChange, today: NaiveDate) -> i64 {
    days_between(item.due_date, today)
}

/// `to - from` in days, through chrono's day numbers: the same number as the calendar
/// subtraction (`(to - from).num_days()`), for a third of its cost (it runs once per item
/// and rule, about fifty times a record).
fn days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    i64::from(to.num_days_from_ce()) - i64::from(from.num_days_from_ce())
}

/// A debit item's amount for balances: open, less its dispute when disputes are excluded.
fn collectible(item: &ItemChange, options: &Options) -> Decimal {
    if options.exclude_disputed {
        item.open_amount - item.disputed_amount
    } else {
        item.open_amount
    }
}

fn figures(ctx: &Context<'_>, conv: &mut Converter<'_>) -> Figures {
    let options = ctx.options();
    let mut f = Figures::default();
    for (currency, totals) in ctx.totals() {
        let mut balance = totals.open;
        let mut cash = Decimal::ZERO;
        if options.exclude_disputed {
            balance -= totals.disputed;
        }
        if options.include_unapplied_payments {
            cash -= totals.unapplied;
        }
        if options.include_in_process_payments {
            cash -= totals.in_process;
        }
        f.balance += conv.convert(balance + cash, currency);
        f.disputed += conv.convert(totals.disputed, currency);
        f.unapplied += conv.convert(totals.unapplied, currency);
        f.in_process += conv.convert(totals.in_process, currency);
        f.credits_and_cash += conv.convert(cash, currency);
    }
    // Credits by their own currencies: a currency whose credits and debits net to zero has
    // no totals entry, and its credits still offset what is late.
    let mut credits: std::collections::BTreeMap<&str, Decimal> = Default::default();
    for item in ctx.items().filter(|i| i.item_type.is_credit()) {
        *credits.entry(item.currency.as_str()).or_default() += item.open_amount;
    }
    for (currency, amount) in credits {
        f.credits_and_cash += conv.convert(amount, currency);
    }
    f.other_currencies = ctx
        .items()
        .filter(|i| i.currency != conv.anchor.currency)
        .count() as i32;
    f
}

/// Debit items at least `from_days` past due, converted and summed per currency.
fn past_due_from(
    ctx: &Context<'_>,
    conv: &mut Converter<'_>,
    from_days: i64,
    to_days: Option<i64>,
) -> Decimal {
    let mut by_currency: std::collections::BTreeMap<&str, Decimal> = Default::default();
    for item in ctx.items().filter(|i| !i.item_type.is_credit()) {
        let days = days_past_due(item, ctx.today);
        if days >= from_days && to_days.is_none_or(|to| days <= to) {
            *by_currency.entry(item.currency.as_str()).or_default() +=
                collectible(item, ctx.options());
        }
    }
    by_currency
        .into_iter()
        .map(|(currency, amount)| conv.convert(amount, currency))
        .sum()
}

/// The oldest past-due debit item; ties go to the smallest item key, so the choice is stable.
pub fn oldest_past_due<'a>(
    items: impl Iterator<Item = &'a ItemChange>,
    today: NaiveDate,
) -> Option<&'a ItemChange> {
    let mut oldest: Option<&ItemChange> = None;
    for item in items {
        if !item.item_type.is_credit()
            && item.due_date < today
            && oldest.is_none_or(|o| item.due_date < o.due_date)
        {
            oldest = Some(item);
        }
    }
    oldest
}

/// The evidence every customer-level rule starts from, in the converter's anchor: computed
/// once per anchor and context (most rules share an anchor), with the rates it missed.
fn base_evidence(ctx: &Context<'_>, conv: &mut Converter<'_>) -> Evidence {
    let key: AnchorKey = (
        conv.anchor.currency.to_string(),
        conv.anchor.rate_type.to_string(),
        conv.anchor.on,
    );
    if let Some((_, evidence, missing)) = ctx.figures.borrow().iter().find(|(k, ..)| *k == key) {
        conv.missing.extend(missing.iter().cloned());
        return evidence.clone();
    }
    let mut fresh = Converter {
        fx: conv.fx,
        anchor: conv.anchor,
        missing: BTreeSet::new(),
    };
    let evidence = compute_base_evidence(ctx, &mut fresh);
    conv.missing.extend(fresh.missing.iter().cloned());
    ctx.figures
        .borrow_mut()
        .push((key, evidence.clone(), fresh.missing));
    evidence
}

fn compute_base_evidence(ctx: &Context<'_>, conv: &mut Converter<'_>) -> Evidence {
    let f = figures(ctx, conv);
    let past_due = past_due_from(ctx, conv, 1, None) + f.credits_and_cash;
    let oldest = oldest_past_due(ctx.items(), ctx.today);
    Evidence {
        currency: conv.anchor.currency.to_string(),
        past_due_amount: past_due,
        oldest_days_past_due: oldest.map_or(0, |i| days_past_due(i, ctx.today) as i32),
        oldest_item_id: oldest.map(|i| i.item_id.clone()),
        items_in_other_currencies: f.other_currencies,
        rate_type: Some(conv.anchor.rate_type.to_string()),
        balance: Some(f.balance),
        disputed_amount: Some(f.disputed),
        unapplied_amount: Some(f.unapplied),
        in_process_amount: Some(f.in_process),
        ..Evidence::default()
    }
}

fn verdict(violated: bool, conv: &Converter<'_>, evidence: Evidence) -> Verdict {
    if let Some(blocked) = conv.blocked() {
        return blocked;
    }
    if violated {
        Verdict::Violated(evidence)
    } else {
        Verdict::Clear(evidence)
    }
}

/// Collection (COLL): the past-due amount (of the rule's aging category and older, if it
/// names one) is at least the rule's amount, and the oldest past-due item is more than the
/// rule's days past due.
pub fn evaluate_collection(rule: &CollectionRule, ctx: &Context<'_>) -> Verdict {
    let mut conv = Converter {
        fx: ctx.fx,
        anchor: Anchor::of_collection(rule, ctx.today),
        missing: BTreeSet::new(),
    };
    let mut evidence = base_evidence(ctx, &mut conv);
    let category = rule
        .aging_id
        .as_deref()
        .and_then(|id| ctx.rules.aging(id))
        .zip(rule.aging_category.as_deref());
    let (threshold_days, measured) = match category {
        Some((aging, category)) => {
            let from = aging
                .categories
                .iter()
                .find(|c| c.id == category)
                .map_or(1, |c| i64::from(c.from_days).max(1));
            evidence.buckets = aging
                .categories
                .iter()
                .map(|c| BucketAmount {
                    category: c.id.clone(),
                    amount: past_due_from(
                        ctx,
                        &mut conv,
                        i64::from(c.from_days),
                        c.to_days.map(i64::from),
                    ),
                })
                .collect();
            let credits = evidence.past_due_amount - past_due_from(ctx, &mut conv, 1, None);
            (
                from - 1,
                past_due_from(ctx, &mut conv, from, None) + credits,
            )
        }
        None => (
            i64::from(rule.days_past_due.unwrap_or(0)),
            evidence.past_due_amount,
        ),
    };
    evidence.threshold_amount = rule.min_past_due_amount;
    evidence.threshold_days = threshold_days as i32;
    evidence.measured_amount = Some(measured);
    let violated = measured >= rule.min_past_due_amount
        && i64::from(evidence.oldest_days_past_due) > threshold_days;
    verdict(violated, &conv, evidence)
}

/// A customer-level assessment rule (credit limit, balance, key statistics).
pub fn evaluate_customer(rule: &AssessmentRule, ctx: &Context<'_>) -> Verdict {
    let anchor = Anchor::of_assessment(rule, ctx.today);
    let has_limit = ctx
        .state
        .customer
        .as_ref()
        .is_some_and(|c| c.credit_limit.is_some());
    if matches!(
        rule.check,
        Check::CreditLimitExceeded | Check::ApproachingCreditLimit { .. }
    ) && !has_limit
    {
        // No credit limit, nothing to exceed or approach (and no figure to convert).
        return Verdict::Clear(Evidence {
            currency: anchor.currency.to_string(),
            ..Evidence::default()
        });
    }
    let mut conv = Converter {
        fx: ctx.fx,
        anchor,
        missing: BTreeSet::new(),
    };
    let mut evidence = base_evidence(ctx, &mut conv);
    let balance = evidence.balance.unwrap_or_default();
    if let Check::KeyStatistic { .. } | Check::RiskScore { .. } = rule.check {
        if !conv.missing.is_empty() {
            // A statistic is blocked only by the rates it uses itself; the balances it cannot
            // convert are left out of its evidence rather than shown short.
            evidence = Evidence {
                currency: evidence.currency,
                items_in_other_currencies: evidence.items_in_other_currencies,
                rate_type: evidence.rate_type,
                ..Evidence::default()
            };
        }
        conv.missing.clear();
    }
    let customer = ctx.state.customer.as_ref();
    // The credit limit in the anchor currency, if the master has one.
    let mut limit = || {
        let c = customer?;
        let limit = c.credit_limit?;
        Some((
            conv.convert(limit, &c.currency),
            c.credit_limit_pct_over.unwrap_or_default(),
        ))
    };
    let violated = match &rule.check {
        Check::CreditLimitExceeded => match limit() {
            Some((limit, pct_over)) => {
                let threshold =
                    stats::round(limit * (Decimal::ONE + pct_over / Decimal::ONE_HUNDRED));
                evidence.credit_limit = Some(limit);
                evidence.threshold_amount = threshold;
                evidence.measured_amount = Some(balance);
                balance > threshold
            }
            None => false,
        },
        Check::ApproachingCreditLimit { percent } => match limit() {
            Some((limit, _)) => {
                let threshold = stats::round(limit * *percent / Decimal::ONE_HUNDRED);
                evidence.credit_limit = Some(limit);
                evidence.threshold_amount = threshold;
                evidence.measured_amount = Some(balance);
                balance >= threshold
            }
            None => false,
        },
        Check::BalanceExceeds { amount } => {
            evidence.threshold_amount = *amount;
            evidence.measured_amount = Some(balance);
            balance > *amount
        }
        Check::KeyStatistic {
            history_id,
            source,
            comparison,
            threshold,
            aggregate,
        } => {
            let value = match source {
                StatisticSource::Condmon if history_id == "DSO" => {
                    // DSO divides the balance: its conversions count.
                    base_evidence(ctx, &mut conv);
                    condmon_statistic(history_id, ctx, &mut conv, balance)
                }
                StatisticSource::Condmon => condmon_statistic(history_id, ctx, &mut conv, balance),
                StatisticSource::Erp => erp_statistic(history_id, *aggregate, ctx, &mut conv),
            };
            match value {
                Some(v) => {
                    let holds = comparison.holds(v.value, *threshold);
                    evidence.statistic = Some(StatisticEvidence {
                        history_id: history_id.clone(),
                        source: source.as_str().to_string(),
                        value: v.value,
                        comparison: comparison.as_str().to_string(),
                        threshold: *threshold,
                        samples: v.samples as i32,
                    });
                    holds
                }
                // No data is no violation: nothing says the statistic is off.
                None => false,
            }
        }
        Check::RiskScore {
            comparison,
            threshold,
        } => match &ctx.state.risk {
            // Missing elements score 0: comparing an incomplete total would decide on a guess.
            Some(score) if !score.complete => {
                return Verdict::Blocked(
                    score
                        .elements
                        .iter()
                        .filter_map(|e| {
                            Some(format!(
                                "risk score element {}: {}",
                                e.name,
                                e.detail.as_ref()?
                            ))
                        })
                        .collect(),
                );
            }
            Some(score) => {
                evidence.statistic = Some(StatisticEvidence {
                    history_id: format!("RISK_SCORE:{}", score.rule_id),
                    source: "CONDMON".into(),
                    value: score.total,
                    comparison: comparison.as_str().to_string(),
                    threshold: *threshold,
                    samples: score.elements.len() as i32,
                });
                comparison.holds(score.total, *threshold)
            }
            // Not scored: nothing to compare.
            None => false,
        },
        Check::EntryTypeReason { .. }
        | Check::DeductionItem { .. }
        | Check::DisputedItem { .. } => {
            unreachable!("item-level checks are evaluated per item")
        }
    };
    verdict(violated, &conv, evidence)
}

fn condmon_statistic(
    history_id: &str,
    ctx: &Context<'_>,
    conv: &mut Converter<'_>,
    balance: Decimal,
) -> Option<StatValue> {
    let window = ctx.options().statistics_window_days;
    let stats = &ctx.state.stats;
    let mut convert = |amount: Decimal, currency: &str| conv.convert(amount, currency);
    match history_id {
        "AVG_DAYS_LATE" => stats.average_days_late(ctx.today, window),
        "WEIGHTED_AVG_DAYS_LATE" => stats.weighted_days_late(ctx.today, window, &mut convert),
        "DSO" => {
            let (sales, count) = stats.sales(ctx.today, window, &mut convert);
            (!sales.is_zero()).then(|| StatValue {
                value: stats::round(balance / sales * Decimal::from(window)),
                samples: count,
            })
        }
        "NSF_COUNT" => Some(stats.nsf_count(ctx.today, window)),
        _ => None,
    }
}

/// The ERP's figure for `history_id` in its latest fiscal period, over business units as the
/// rule says (a sum for amounts and counts, an average or maximum for ratios and days).
fn erp_statistic(
    history_id: &str,
    aggregate: Aggregate,
    ctx: &Context<'_>,
    conv: &mut Converter<'_>,
) -> Option<StatValue> {
    let rows: Vec<_> = ctx
        .state
        .history
        .values()
        .filter(|h| h.history_id == history_id)
        .collect();
    let latest = rows
        .iter()
        .map(|h| (h.fiscal_year, h.accounting_period))
        .max()?;
    let values: Vec<Decimal> = rows
        .iter()
        .filter(|h| (h.fiscal_year, h.accounting_period) == latest)
        .map(|h| match &h.currency {
            Some(currency) => conv.convert(h.value, currency),
            None => h.value,
        })
        .collect();
    let sum: Decimal = values.iter().sum();
    let value = match aggregate {
        Aggregate::Sum => sum,
        Aggregate::Average => stats::round(sum / Decimal::from(values.len())),
        Aggregate::Max => values.iter().copied().max().unwrap_or_default(),
    };
    Some(StatValue {
        value,
        samples: values.len(),
    })
}

/// An item-level assessment rule, for every open item: (item key, verdict).
pub fn evaluate_items(rule: &AssessmentRule, ctx: &Context<'_>) -> Vec<(String, Verdict)> {
    let anchor = Anchor::of_assessment(rule, ctx.today);
    ctx.keyed_items()
        .filter_map(|(key, item)| {
            let mut conv = Converter {
                fx: ctx.fx,
                anchor,
                missing: BTreeSet::new(),
            };
            let at_least = |min: &Option<Decimal>, amount: Decimal| min.is_none_or(|m| amount >= m);
            // Whether the rule applies to the item comes first: most items are of no concern
            // to an item rule, and converting their amounts was most of its cost.
            let (violated, measured, threshold, days) = match &rule.check {
                Check::EntryTypeReason {
                    entry_type,
                    entry_reason,
                    min_amount,
                    days,
                    date_basis,
                } => {
                    let matches = &item.entry_type == entry_type
                        && entry_reason
                            .as_ref()
                            .is_none_or(|r| item.entry_reason.as_ref() == Some(r));
                    if !matches {
                        return None;
                    }
                    let open = conv.convert(item.open_amount, &item.currency);
                    let basis = match date_basis {
                        crate::rules::DateBasis::Due => item.due_date,
                        crate::rules::DateBasis::Accounting => item.accounting_date,
                    };
                    let day_reached =
                        days.is_none_or(|d| ctx.today >= basis + Duration::days(i64::from(d)));
                    // Credit entry types reach an amount by their size.
                    (
                        at_least(min_amount, open.abs()) && day_reached,
                        open,
                        *min_amount,
                        days.unwrap_or(0),
                    )
                }
                Check::DeductionItem {
                    min_amount,
                    min_days,
                } => {
                    if item.item_type != ItemType::Deduction {
                        return None;
                    }
                    let open = conv.convert(item.open_amount, &item.currency);
                    let old_enough = min_days.is_none_or(|d| {
                        ctx.today >= item.accounting_date + Duration::days(i64::from(d))
                    });
                    (
                        at_least(min_amount, open) && old_enough,
                        open,
                        *min_amount,
                        min_days.unwrap_or(0),
                    )
                }
                Check::DisputedItem { min_amount } => {
                    if item.disputed_amount.is_zero() {
                        return None;
                    }
                    let disputed = conv.convert(item.disputed_amount, &item.currency);
                    (at_least(min_amount, disputed), disputed, *min_amount, 0)
                }
                _ => unreachable!("customer-level checks are evaluated per customer"),
            };
            let evidence = Evidence {
                currency: anchor.currency.to_string(),
                threshold_amount: threshold.unwrap_or_default(),
                threshold_days: days,
                measured_amount: Some(measured),
                rate_type: Some(anchor.rate_type.to_string()),
                oldest_days_past_due: days_past_due(item, ctx.today).max(0) as i32,
                oldest_item_id: Some(item.item_id.clone()),
                items_in_other_currencies: i32::from(item.currency != anchor.currency),
                item: Some(ItemEvidence {
                    item_id: item.item_id.clone(),
                    item_line: item.item_line,
                    item_type: item.item_type.as_str().to_string(),
                    currency: item.currency.clone(),
                    open_amount: item.open_amount,
                    disputed_amount: item.disputed_amount,
                    entry_type: item.entry_type.clone(),
                    entry_reason: item.entry_reason.clone(),
                    due_date: item.due_date,
                    accounting_date: item.accounting_date,
                }),
                ..Evidence::default()
            };
            debug_assert_eq!(key, &item_key(&item.item_id, item.item_line));
            Some((key.clone(), verdict(violated, &conv, evidence)))
        })
        .collect()
}

/// The first date after `today` on which time alone can change this rule's answer for the
/// customer: an item falling past due or crossing the rule's days, an item rule's date coming.
pub fn next_change_collection(rule: &CollectionRule, ctx: &Context<'_>) -> Option<NaiveDate> {
    let mut thresholds = vec![1_i64];
    match (
        &rule.days_past_due,
        rule.aging_id.as_deref().and_then(|a| ctx.rules.aging(a)),
    ) {
        (Some(days), _) => thresholds.push(i64::from(*days) + 1),
        (None, Some(aging)) => thresholds.extend(
            aging
                .categories
                .iter()
                .flat_map(|c| {
                    [
                        Some(i64::from(c.from_days)),
                        c.to_days.map(|t| i64::from(t) + 1),
                    ]
                })
                .flatten(),
        ),
        (None, None) => {}
    }
    thresholds.sort_unstable();
    // Each debit item's next crossing is the first threshold beyond its days past due today:
    // one date per item, not one per item and threshold.
    ctx.items()
        .filter(|i| !i.item_type.is_credit())
        .filter_map(|i| {
            let days = days_between(i.due_date, ctx.today);
            let next = thresholds.iter().find(|t| **t > days)?;
            Some(i.due_date + Duration::days(*next))
        })
        .min()
}

pub fn next_change_assessment(rule: &AssessmentRule, ctx: &Context<'_>) -> Option<NaiveDate> {
    let window = ctx.options().statistics_window_days;
    let dates: Vec<NaiveDate> = match &rule.check {
        Check::EntryTypeReason {
            days: Some(days),
            date_basis,
            entry_type,
            entry_reason,
            ..
        } => ctx
            .items()
            .filter(|i| {
                &i.entry_type == entry_type
                    && entry_reason
                        .as_ref()
                        .is_none_or(|r| i.entry_reason.as_ref() == Some(r))
            })
            .map(|i| {
                let basis = match date_basis {
                    crate::rules::DateBasis::Due => i.due_date,
                    crate::rules::DateBasis::Accounting => i.accounting_date,
                };
                basis + Duration::days(i64::from(*days))
            })
            .collect(),
        Check::DeductionItem {
            min_days: Some(days),
            ..
        } => ctx
            .items()
            .filter(|i| i.item_type == ItemType::Deduction)
            .map(|i| i.accounting_date + Duration::days(i64::from(*days)))
            .collect(),
        Check::KeyStatistic {
            source: StatisticSource::Condmon,
            ..
        } => ctx
            .state
            .stats
            .next_expiry(ctx.today, window)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    dates.into_iter().filter(|d| *d > ctx.today).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Days past due by day numbers are the calendar's days, across leap years and
        /// centuries, either way round.
        #[test]
        fn days_between_is_the_calendar_subtraction(a in -200_000i32..200_000, b in -200_000i32..200_000) {
            let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
            let (from, to) = (epoch + Duration::days(a.into()), epoch + Duration::days(b.into()));
            proptest::prop_assert_eq!(days_between(from, to), (to - from).num_days());
        }
    }
}
