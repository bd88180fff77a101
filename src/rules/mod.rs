//! Rules: installation options, aging definitions, collection and assessment rules and action
//! templates. Parsed from a versioned TOML document and validated once, then shared read-only
//! by the engine. `condmon rules check FILE` prints every problem with its location.
//!
//! Rules apply at three levels: setID, customer group and customer. For each condition the
//! lowest level that has a rule for the customer wins ([`RuleSet::applicable`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{MonitorRole, OwnerType};

mod directory;
mod schedule;
pub use directory::{Calendar, Owner, STANDARD_CALENDAR};
pub use schedule::{Cadence, Schedule};

/// A whole rule set, as one versioned document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub version: u32,
    #[serde(default)]
    pub options: Options,
    #[serde(default, rename = "aging")]
    pub agings: Vec<AgingDefinition>,
    #[serde(default, rename = "collection_rule")]
    pub collection_rules: Vec<CollectionRule>,
    #[serde(default, rename = "assessment_rule")]
    pub assessment_rules: Vec<AssessmentRule>,
    #[serde(default, rename = "scoring_rule")]
    pub scoring_rules: Vec<ScoringRule>,
    #[serde(default, rename = "template")]
    pub templates: Vec<ActionTemplate>,
    /// Business calendars by business unit (due and notification dates count their days).
    #[serde(default, rename = "calendar")]
    pub calendars: Vec<Calendar>,
    /// Action owners: supervisors and e-mail addresses for notifications.
    #[serde(default, rename = "owner")]
    pub owners: Vec<Owner>,
    /// The days rules that name a schedule may open their plans on.
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<Schedule>,
}

/// The installation options of the receivables manual that change what condmon computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Unapplied cash reduces the customer balance and the past-due amount.
    pub include_unapplied_payments: bool,
    /// Payments received but not yet posted reduce them too.
    pub include_in_process_payments: bool,
    /// Amounts in dispute are left out of the balance and the past-due amount.
    pub exclude_disputed: bool,
    /// A customer-level action goes to the owner that every open item of its business unit
    /// names, when they all name the same one; otherwise to the customer's owner.
    pub business_unit_monitoring: bool,
    /// A collection violation of a higher priority replaces the current plan ("Template
    /// Upgrade"); without it the current plan stays.
    pub escalation: bool,
    /// The window, in days, of the statistics condmon keeps (days late, DSO, NSF payments).
    pub statistics_window_days: u32,
    /// The month (1-12) a fiscal year starts in; periods are months from it. A fiscal year is
    /// named by the calendar year it ends in.
    pub fiscal_year_start_month: u32,
    /// Score every customer of its setID with this scoring rule alone, whatever the levels say.
    pub override_scoring_rule: Option<String>,
    /// Business days after a promise date on which a payment still keeps the promise.
    pub promise_grace_days: u32,
    /// A broken promise opens a plan from this template (condition `BRKP`) until its review
    /// is done.
    pub broken_promise_template: Option<String>,
    /// Closed actions and finished conversations leave a customer's hot state this many days
    /// after they closed (kept in its history store). At least 366: payments are kept a year
    /// for judging promises, so nothing that moves can still change a decision.
    pub history_after_days: u32,
    /// The collector hears of every new debit or credit the ERP created when it closed
    /// another item (an item change naming `origin_item_id`).
    pub notify_new_debits_credits: bool,
    /// The collector hears of every new on-account item created from a payment (an
    /// `ON_ACCOUNT` item change naming `origin_payment_id`).
    pub notify_new_on_account: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            include_unapplied_payments: false,
            include_in_process_payments: false,
            exclude_disputed: false,
            business_unit_monitoring: false,
            escalation: false,
            statistics_window_days: 90,
            fiscal_year_start_month: 1,
            override_scoring_rule: None,
            promise_grace_days: 0,
            broken_promise_template: None,
            history_after_days: 400,
            notify_new_debits_credits: false,
            notify_new_on_account: false,
        }
    }
}

/// Aging categories by days past due (an item due today is 0 days past due; not yet due is
/// negative). `to_days` absent means "and older".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgingDefinition {
    pub id: String,
    #[serde(rename = "category")]
    pub categories: Vec<AgingCategory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgingCategory {
    pub id: String,
    pub from_days: i32,
    #[serde(default)]
    pub to_days: Option<i32>,
}

impl AgingCategory {
    pub fn contains(&self, days_past_due: i64) -> bool {
        days_past_due >= i64::from(self.from_days)
            && self.to_days.is_none_or(|to| days_past_due <= i64::from(to))
    }
}

/// Where a rule applies: a setID, optionally narrowed to a customer group or one customer.
pub trait Scoped {
    fn set_id(&self) -> &str;
    fn customer_group(&self) -> Option<&str>;
    fn customer_id(&self) -> Option<&str>;

    fn level(&self) -> Level {
        if self.customer_id().is_some() {
            Level::Customer
        } else if self.customer_group().is_some() {
            Level::CustomerGroup
        } else {
            Level::SetId
        }
    }

    /// Whether the rule is written for this customer (at any level).
    fn covers(&self, set_id: &str, customer_id: &str, group: Option<&str>) -> bool {
        self.set_id() == set_id
            && self.customer_id().is_none_or(|c| c == customer_id)
            && self.customer_group().is_none_or(|g| Some(g) == group)
    }
}

/// Rule levels, lowest (most specific) first: the lowest level with a rule wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Customer,
    CustomerGroup,
    SetId,
}

/// "A customer whose past-due amount is at least `min_past_due_amount` and whose oldest
/// past-due item is more than `days_past_due` days past due is in violation." With an aging
/// category instead of days, the amount counted is what is in that category or older.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionRule {
    pub id: String,
    pub set_id: String,
    #[serde(default)]
    pub customer_group: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Condition code reported on actions (COLL for collection rules).
    #[serde(default = "default_collection_condition")]
    pub condition: String,
    #[serde(default)]
    pub monitor: MonitorRole,
    /// Among a customer's violated collection rules the highest priority wins; defaults to
    /// the template's priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// The anchor currency: amounts are converted to it and compared in it.
    pub currency: String,
    #[serde(default = "default_rate_type")]
    pub rate_type: String,
    /// Converts with the rates in force on this date instead of the business date.
    #[serde(default)]
    pub anchor_date: Option<NaiveDate>,
    pub min_past_due_amount: Decimal,
    #[serde(default)]
    pub days_past_due: Option<i32>,
    #[serde(default)]
    pub aging_id: Option<String>,
    #[serde(default)]
    pub aging_category: Option<String>,
    pub template: String,
    pub owner_type: OwnerType,
    /// The schedule on whose days a violation opens the plan; none: the day it begins.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// An assessment rule: one condition of the catalog, with its parameters in `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentRule {
    pub id: String,
    pub set_id: String,
    #[serde(default)]
    pub customer_group: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Condition code reported on actions; defaults to the check's ([`Check::default_code`]).
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub monitor: MonitorRole,
    pub currency: String,
    #[serde(default = "default_rate_type")]
    pub rate_type: String,
    #[serde(default)]
    pub anchor_date: Option<NaiveDate>,
    pub template: String,
    /// Defaults to the check's ([`Check::default_owner`]).
    #[serde(default)]
    pub owner_type: Option<OwnerType>,
    pub check: Check,
    /// As for collection rules.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// The condition catalog. Customer-level checks produce one violation per customer;
/// item-level checks one per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum Check {
    /// Balance above credit limit × (1 + percent over / 100).
    CreditLimitExceeded,
    /// Balance at or above `percent` % of the credit limit.
    ApproachingCreditLimit { percent: Decimal },
    /// Balance above `amount`.
    BalanceExceeds { amount: Decimal },
    /// A history statistic above or below a threshold (Key Statistics Exceeded).
    KeyStatistic {
        history_id: String,
        #[serde(default)]
        source: StatisticSource,
        comparison: Comparison,
        threshold: Decimal,
        /// How ERP figures of several business units combine (default: their sum).
        #[serde(default)]
        aggregate: Aggregate,
    },
    /// Items of an entry type (and reason) that reach `min_amount`, and/or whose date plus
    /// `days` has come (negative days: before the date).
    EntryTypeReason {
        entry_type: String,
        #[serde(default)]
        entry_reason: Option<String>,
        #[serde(default)]
        min_amount: Option<Decimal>,
        #[serde(default)]
        days: Option<i32>,
        #[serde(default)]
        date_basis: DateBasis,
    },
    /// Open deductions (of at least `min_amount`, at least `min_days` old).
    DeductionItem {
        #[serde(default)]
        min_amount: Option<Decimal>,
        #[serde(default)]
        min_days: Option<i32>,
    },
    /// Items with an amount in dispute (of at least `min_amount`).
    DisputedItem {
        #[serde(default)]
        min_amount: Option<Decimal>,
    },
    /// The customer's risk score (from its scoring rule) above or below a threshold.
    RiskScore {
        comparison: Comparison,
        threshold: Decimal,
    },
}

impl Check {
    pub fn default_code(&self) -> &'static str {
        match self {
            Check::CreditLimitExceeded => "CRLE",
            Check::ApproachingCreditLimit { .. } => "APCL",
            Check::BalanceExceeds { .. } => "BALX",
            Check::KeyStatistic { .. } => "KSTE",
            Check::EntryTypeReason { .. } => "ETRC",
            Check::DeductionItem { .. } => "DEDN",
            Check::DisputedItem { .. } => "DISP",
            Check::RiskScore { .. } => "RISK",
        }
    }

    pub fn default_owner(&self) -> OwnerType {
        match self {
            Check::CreditLimitExceeded
            | Check::ApproachingCreditLimit { .. }
            | Check::RiskScore { .. } => OwnerType::CreditAnalyst,
            Check::BalanceExceeds { .. } | Check::KeyStatistic { .. } => OwnerType::Collector,
            Check::EntryTypeReason { .. }
            | Check::DeductionItem { .. }
            | Check::DisputedItem { .. } => OwnerType::ArSpecialist,
        }
    }

    /// Item-level checks raise one violation (and one plan) per item.
    pub fn is_item_level(&self) -> bool {
        matches!(
            self,
            Check::EntryTypeReason { .. }
                | Check::DeductionItem { .. }
                | Check::DisputedItem { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatisticSource {
    /// Kept by condmon from item and payment events, over a rolling window.
    #[default]
    Condmon,
    /// The ERP's history events: the latest fiscal period's value.
    Erp,
}

impl StatisticSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StatisticSource::Condmon => "CONDMON",
            StatisticSource::Erp => "ERP",
        }
    }
}

/// How ERP history figures of several business units combine: amounts and counts add up;
/// ratios and days (average days late, DSO) do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aggregate {
    #[default]
    Sum,
    Average,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    Above,
    Below,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => "ABOVE",
            Comparison::Below => "BELOW",
        }
    }

    pub fn holds(self, value: Decimal, threshold: Decimal) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::Below => value < threshold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DateBasis {
    #[default]
    Due,
    Accounting,
}

/// A risk scoring rule: weighted elements, each scored by a range table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringRule {
    pub id: String,
    pub set_id: String,
    #[serde(default)]
    pub customer_group: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The anchor currency amounts are converted to.
    pub currency: String,
    #[serde(default = "default_rate_type")]
    pub rate_type: String,
    #[serde(default)]
    pub anchor_date: Option<NaiveDate>,
    /// History elements read this fiscal year and period instead of the business date's.
    #[serde(default)]
    pub history_period: Option<FiscalPeriod>,
    #[serde(rename = "element")]
    pub elements: Vec<ScoringElement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalPeriod {
    pub fiscal_year: i32,
    pub period: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringElement {
    /// The element's name in the breakdown (e.g. AVGDAYS).
    pub name: String,
    /// Percent of the range value the element contributes.
    pub weight: Decimal,
    pub input: ScoringInput,
    /// For numeric inputs: inclusive ranges, the first containing the input scores.
    #[serde(default)]
    pub ranges: Vec<ScoreRange>,
    /// For Y/N inputs: the value of each answer.
    #[serde(default)]
    pub flag: Option<FlagValues>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRange {
    pub low: Decimal,
    pub high: Decimal,
    pub value: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagValues {
    pub yes: Decimal,
    pub no: Decimal,
}

/// What an element scores, by scoring group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum ScoringInput {
    /// An ERP history figure (system- or user-defined history ID) for the fiscal period.
    History {
        history_id: String,
    },
    /// An ERP aging category's amount, summed over business units, for an aging ID.
    Aging {
        aging_id: String,
        category: String,
    },
    /// The largest open debit item due on or before the business date.
    LargestPastDueItem,
    /// The most days past due of an open item of at least `min_amount`.
    OldestItemPastDue {
        min_amount: Decimal,
    },
    /// Balance as a percent of credit limit × (1 + percent over / 100).
    ApproachingCreditLimitPercent,
    /// Y when the balance is above credit limit × (1 + percent over / 100).
    ExceededCreditLimit,
    /// Y when the customer master says credit hold.
    CreditHold,
    BalanceDue,
    /// Past-due amount as a percent of the balance.
    PercentOfBalancePastDue,
    /// A figure of the customer master.
    CustomerField {
        field: CustomerField,
    },
    /// A figure of the credit agency (D&B) report.
    CreditAgencyField {
        field: AgencyField,
    },
    /// Total current liabilities / current assets.
    DebtRatio,
    /// Sales / total assets.
    AssetTurnover,
    /// (Net income / total assets) − total current liabilities, as the manual gives it.
    ReturnOnEquity,
    /// (Total assets − inventory) / total current liabilities.
    AcidTest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomerField {
    CreditLimit,
    CreditLimitPctOver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgencyField {
    Sales,
    TotalAssets,
    CurrentAssets,
    TotalCurrentLiabilities,
    NetIncome,
    Inventory,
    Paydex,
}

/// History IDs the ERP defines (scored in the SYSTEM_HISTORY group; others are USER_HISTORY).
pub const SYSTEM_HISTORY_IDS: [&str; 10] = [
    "AVG_DAYS_LATE",
    "WEIGHTED_AVG_DAYS_LATE",
    "DSO",
    "PAST_DUE",
    "BALANCE",
    "HIGH_BALANCE",
    "SALES",
    "PAYMENTS",
    "NSF_COUNT",
    "DEDUCTIONS",
];

impl ScoringInput {
    pub fn group(&self) -> &'static str {
        match self {
            ScoringInput::History { history_id }
                if SYSTEM_HISTORY_IDS.contains(&history_id.as_str()) =>
            {
                "SYSTEM_HISTORY"
            }
            ScoringInput::History { .. } => "USER_HISTORY",
            ScoringInput::Aging { .. } => "AGING",
            ScoringInput::LargestPastDueItem | ScoringInput::OldestItemPastDue { .. } => "ITEM",
            ScoringInput::ApproachingCreditLimitPercent
            | ScoringInput::ExceededCreditLimit
            | ScoringInput::CreditHold
            | ScoringInput::BalanceDue
            | ScoringInput::PercentOfBalancePastDue => "CUSTOMER_ACTIVITY",
            ScoringInput::CustomerField { .. } => "CUSTOMER",
            ScoringInput::CreditAgencyField { .. } => "CREDIT_AGENCY",
            ScoringInput::DebtRatio
            | ScoringInput::AssetTurnover
            | ScoringInput::ReturnOnEquity
            | ScoringInput::AcidTest => "RATIOS",
        }
    }

    /// Y/N inputs score with `flag` instead of ranges.
    pub fn is_flag(&self) -> bool {
        matches!(
            self,
            ScoringInput::ExceededCreditLimit | ScoringInput::CreditHold
        )
    }
}

/// The statistics condmon keeps itself (source `CONDMON`).
pub const CONDMON_STATISTICS: [&str; 4] = [
    "AVG_DAYS_LATE",
    "WEIGHTED_AVG_DAYS_LATE",
    "DSO",
    "NSF_COUNT",
];

fn default_collection_condition() -> String {
    "COLL".to_string()
}

fn default_rate_type() -> String {
    "CRRNT".to_string()
}

macro_rules! scoped {
    ($t:ty) => {
        impl Scoped for $t {
            fn set_id(&self) -> &str {
                &self.set_id
            }
            fn customer_group(&self) -> Option<&str> {
                self.customer_group.as_deref()
            }
            fn customer_id(&self) -> Option<&str> {
                self.customer_id.as_deref()
            }
        }
    };
}
scoped!(CollectionRule);
scoped!(AssessmentRule);
scoped!(ScoringRule);

impl AssessmentRule {
    pub fn code(&self) -> &str {
        self.condition
            .as_deref()
            .unwrap_or_else(|| self.check.default_code())
    }

    /// What a lower-level rule overrides: the same condition code about the same thing (a
    /// KSTE rule on DSO does not override one on NSF payments, nor ETRC rules of other
    /// entry types each other).
    pub fn override_key(&self) -> (&str, &str, &str) {
        match &self.check {
            Check::KeyStatistic {
                history_id, source, ..
            } => (self.code(), source.as_str(), history_id),
            Check::EntryTypeReason {
                entry_type,
                entry_reason,
                ..
            } => (
                self.code(),
                entry_type,
                entry_reason.as_deref().unwrap_or("*"),
            ),
            _ => (self.code(), "", ""),
        }
    }

    pub fn owner(&self) -> OwnerType {
        self.owner_type
            .unwrap_or_else(|| self.check.default_owner())
    }
}

/// An escalating plan: the steps a violation sets in motion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTemplate {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub priority: i32,
    #[serde(rename = "step")]
    pub steps: Vec<TemplateStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateStep {
    /// Days after the violation began on which the action comes due for the list.
    pub days_after: i32,
    pub action_code: String,
    #[serde(default)]
    pub action_parameter: Option<String>,
    /// Defaults to the rule's owner type.
    #[serde(default)]
    pub owner_type: Option<OwnerType>,
    /// Days from the action date to its due date.
    pub due_days: i32,
    /// Automated steps are performed by condmon on their day; proposed ones go to the list.
    #[serde(default)]
    pub automated: bool,
    /// Business days from the due date (negative: before it) on which the owner, the owner's
    /// supervisor and the item's AR specialist are reminded of an action still not done.
    #[serde(default)]
    pub notify_owner_days: Option<i32>,
    #[serde(default)]
    pub notify_supervisor_days: Option<i32>,
    #[serde(default)]
    pub notify_specialist_days: Option<i32>,
}

/// One problem in a rule set, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{location}: {message}")]
pub struct RuleError {
    pub location: String,
    pub message: String,
}

#[derive(Debug, Error)]
pub enum RulesError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {} problem(s):\n{}", .errors.len(), .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        errors: Vec<RuleError>,
    },
}

/// The rules that apply to one customer, after the level hierarchy.
#[derive(Debug, Default)]
pub struct Applicable<'a> {
    /// Collection rules by (condition code, monitored role), highest priority first.
    pub collection: BTreeMap<(&'a str, MonitorRole), Vec<&'a CollectionRule>>,
    pub assessment: Vec<&'a AssessmentRule>,
}

impl RuleSet {
    /// Parses and validates; every problem is reported, not just the first.
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
        let invalid = |errors| RulesError::Invalid {
            path: origin.to_string(),
            errors,
        };
        let rules: RuleSet = toml::from_str(text).map_err(|e| {
            let location = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}")
                }
                None => "document".to_string(),
            };
            invalid(vec![RuleError {
                location,
                message: e.message().to_string(),
            }])
        })?;
        let errors = rules.problems();
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(invalid(errors))
        }
    }

    pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn template(&self, id: &str) -> Option<&ActionTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// The calendar of a business unit: its own, or the standard one (Saturday and Sunday off).
    pub fn calendar(&self, business_unit: &str) -> &Calendar {
        self.calendars
            .iter()
            .find(|c| c.business_units.iter().any(|u| u == business_unit))
            .unwrap_or(&STANDARD_CALENDAR)
    }

    /// What `rules check` warns of about calendars: each of `business_units` that no
    /// calendar names (its dates count weekends only, in the STANDARD calendar), or, with none
    /// given, which units are covered at all.
    pub fn calendar_warnings(&self, business_units: &[String]) -> Vec<String> {
        let named: Vec<&str> = self
            .calendars
            .iter()
            .flat_map(|c| c.business_units.iter().map(String::as_str))
            .collect();
        let fallback = "its due and notification dates count weekends only (calendar STANDARD), \
                        with no holidays";
        if business_units.is_empty() {
            return vec![if named.is_empty() {
                format!("no calendar is defined: every business unit falls back; {fallback}")
            } else {
                format!(
                    "a business unit other than {} is named by no calendar and falls back; \
                     {fallback} (name yours with --business-unit to check them)",
                    named.join(", ")
                )
            }];
        }
        business_units
            .iter()
            .filter(|unit| !named.contains(&unit.as_str()))
            .map(|unit| format!("business unit `{unit}` is named by no calendar; {fallback}"))
            .collect()
    }

    pub fn owner(&self, id: &str) -> Option<&Owner> {
        self.owners.iter().find(|o| o.id == id)
    }

    pub fn aging(&self, id: &str) -> Option<&AgingDefinition> {
        self.agings.iter().find(|a| a.id == id)
    }

    pub fn collection_rule(&self, id: &str) -> Option<&CollectionRule> {
        self.collection_rules.iter().find(|r| r.id == id)
    }

    pub fn assessment_rule(&self, id: &str) -> Option<&AssessmentRule> {
        self.assessment_rules.iter().find(|r| r.id == id)
    }

    /// The schedule of a collection or assessment rule, if it names one.
    pub fn schedule_of(&self, rule_id: &str) -> Option<&Schedule> {
        let name = match self.collection_rule(rule_id) {
            Some(rule) => rule.schedule.as_deref(),
            None => self.assessment_rule(rule_id)?.schedule.as_deref(),
        }?;
        self.schedules.iter().find(|s| s.id == name)
    }

    pub fn scoring_rule(&self, id: &str) -> Option<&ScoringRule> {
        self.scoring_rules.iter().find(|r| r.id == id)
    }

    /// The scoring rule of a customer: the override rule when the options name one, else the
    /// first rule of the lowest level that has one for it.
    pub fn scoring_rule_for(
        &self,
        set_id: &str,
        customer_id: &str,
        group: Option<&str>,
    ) -> Option<&ScoringRule> {
        if let Some(rule) = self
            .options
            .override_scoring_rule
            .as_ref()
            .and_then(|id| self.scoring_rule(id))
            .filter(|r| r.set_id == set_id)
        {
            return Some(rule);
        }
        lowest_level(
            self.scoring_rules
                .iter()
                .filter(|r| r.covers(set_id, customer_id, group)),
        )
        .into_iter()
        .next()
    }

    /// A collection rule's priority: its own, or its template's.
    pub fn priority(&self, rule: &CollectionRule) -> i32 {
        rule.priority
            .or_else(|| self.template(&rule.template).map(|t| t.priority))
            .unwrap_or(0)
    }

    /// The rules for one customer: for each condition (and monitored relationship), those of
    /// the lowest level that has any.
    pub fn applicable<'a>(
        &'a self,
        set_id: &str,
        customer_id: &str,
        group: Option<&str>,
    ) -> Applicable<'a> {
        let mut out = Applicable::default();
        let covers = |r: &dyn Scoped| r.covers(set_id, customer_id, group);
        for ((code, role), rules) in by_kind(&self.collection_rules, |r| {
            (r.condition.as_str(), r.monitor)
        }) {
            let mut rules = lowest_level(rules.into_iter().filter(|r| covers(*r)));
            if !rules.is_empty() {
                // Stable: equal priorities keep the file's order.
                rules.sort_by_key(|r| std::cmp::Reverse(self.priority(r)));
                out.collection.insert((code, role), rules);
            }
        }
        for (_, rules) in by_kind(&self.assessment_rules, |r| (r.override_key(), r.monitor)) {
            out.assessment
                .extend(lowest_level(rules.into_iter().filter(|r| covers(*r))));
        }
        out
    }

    /// Every anchor currency a rule (collection, assessment or scoring) converts to: a rate
    /// concerns customers only where one of its currencies is an anchor.
    pub fn anchor_currencies(&self) -> HashSet<&str> {
        self.collection_rules
            .iter()
            .map(|r| r.currency.as_str())
            .chain(self.assessment_rules.iter().map(|r| r.currency.as_str()))
            .chain(self.scoring_rules.iter().map(|r| r.currency.as_str()))
            .collect()
    }

    fn problems(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut push =
            |location: String, message: String| errors.push(RuleError { location, message });
        if self.options.statistics_window_days == 0 {
            push(
                "options".into(),
                "statistics_window_days must be at least 1".into(),
            );
        }
        let named = self
            .collection_rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let at = format!("collection_rule[{i}] ({})", r.id);
                r.schedule.as_deref().map(|s| (at, s))
            })
            .chain(
                self.assessment_rules
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        let at = format!("assessment_rule[{i}] ({})", r.id);
                        r.schedule.as_deref().map(|s| (at, s))
                    }),
            );
        schedule::problems(&self.schedules, named, &mut push);
        let mut aging_ids = HashSet::new();
        for (i, a) in self.agings.iter().enumerate() {
            let at = format!("aging[{i}] ({})", a.id);
            if !aging_ids.insert(a.id.as_str()) {
                push(at.clone(), format!("aging id `{}` is defined twice", a.id));
            }
            if a.categories.is_empty() {
                push(
                    at.clone(),
                    "an aging definition needs at least one category".into(),
                );
            }
            for (j, c) in a.categories.iter().enumerate() {
                let at = format!("{at}.category[{j}] ({})", c.id);
                if c.to_days.is_some_and(|to| to < c.from_days) {
                    push(at.clone(), "to_days is before from_days".into());
                }
                if let Some(prev) = j.checked_sub(1).map(|p| &a.categories[p]) {
                    match prev.to_days {
                        None => push(at.clone(), "follows an open-ended category".into()),
                        Some(to) if c.from_days <= to => push(
                            at.clone(),
                            format!(
                                "overlaps the previous category (from_days {} <= {to})",
                                c.from_days
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
        let mut template_ids = HashSet::new();
        for (i, t) in self.templates.iter().enumerate() {
            let at = format!("template[{i}] ({})", t.id);
            if !template_ids.insert(t.id.as_str()) {
                push(
                    at.clone(),
                    format!("template id `{}` is defined twice", t.id),
                );
            }
            if t.steps.is_empty() {
                push(at.clone(), "a template needs at least one step".into());
            }
            for (j, s) in t.steps.iter().enumerate() {
                let at = format!("{at}.step[{j}]");
                if s.days_after < 0 {
                    push(
                        at.clone(),
                        format!("days_after {} is negative", s.days_after),
                    );
                }
                if j > 0 && s.days_after < t.steps[j - 1].days_after {
                    push(at.clone(), "steps must be in order of days_after".into());
                }
                if s.due_days < 0 {
                    push(at.clone(), format!("due_days {} is negative", s.due_days));
                }
                if s.due_days > 3660 {
                    push(
                        at.clone(),
                        format!("due_days {} is more than ten years", s.due_days),
                    );
                }
                for (field, days) in [
                    ("notify_owner_days", s.notify_owner_days),
                    ("notify_supervisor_days", s.notify_supervisor_days),
                    ("notify_specialist_days", s.notify_specialist_days),
                ] {
                    if let Some(days) = days.filter(|d| d.abs() > 366) {
                        push(
                            at.clone(),
                            format!("{field} {days} is more than a year from the due date"),
                        );
                    }
                }
                if s.action_code.trim().is_empty() {
                    push(at.clone(), "action_code is empty".into());
                }
            }
        }
        let mut rule_ids = HashSet::new();
        let mut common = |at: &str,
                          id: &str,
                          scope: &dyn Scoped,
                          currency: &str,
                          rate_type: &str,
                          template: Option<&str>,
                          push: &mut dyn FnMut(String, String)| {
            if !rule_ids.insert(id.to_string()) {
                push(at.to_string(), format!("rule id `{id}` is defined twice"));
            }
            if id.trim().is_empty() {
                push(at.to_string(), "id is empty".into());
            }
            if id.contains(['|', '@', '/']) {
                push(at.to_string(), "id must not contain `|`, `@` or `/`".into());
            }
            if scope.set_id().trim().is_empty() {
                push(at.to_string(), "set_id is empty".into());
            }
            if scope.customer_group().is_some() && scope.customer_id().is_some() {
                push(
                    at.to_string(),
                    "a rule is for a customer group or for a customer, not both".into(),
                );
            }
            if iso_currency::Currency::from_code(currency).is_none() {
                push(
                    at.to_string(),
                    format!("`{currency}` is not an ISO 4217 currency code"),
                );
            }
            if rate_type.trim().is_empty() {
                push(at.to_string(), "rate_type is empty".into());
            }
            if let Some(template) = template.filter(|t| !template_ids.contains(t)) {
                push(
                    at.to_string(),
                    format!("template `{template}` is not defined"),
                );
            }
        };
        for (i, r) in self.collection_rules.iter().enumerate() {
            let at = format!("collection_rule[{i}] ({})", r.id);
            common(
                &at,
                &r.id,
                r,
                &r.currency,
                &r.rate_type,
                Some(r.template.as_str()),
                &mut push,
            );
            if r.min_past_due_amount < Decimal::ZERO {
                push(at.clone(), "min_past_due_amount is negative".into());
            }
            match (&r.days_past_due, &r.aging_id, &r.aging_category) {
                (Some(days), None, None) => {
                    if *days < 0 {
                        push(at.clone(), "days_past_due is negative".into());
                    }
                }
                (None, Some(aging), Some(category)) => match self.aging(aging) {
                    None => push(at.clone(), format!("aging `{aging}` is not defined")),
                    Some(def) if !def.categories.iter().any(|c| &c.id == category) => push(
                        at.clone(),
                        format!("aging `{aging}` has no category `{category}`"),
                    ),
                    Some(_) => {}
                },
                _ => push(
                    at.clone(),
                    "give either days_past_due, or aging_id with aging_category".into(),
                ),
            }
        }
        for (i, r) in self.assessment_rules.iter().enumerate() {
            let at = format!("assessment_rule[{i}] ({})", r.id);
            common(
                &at,
                &r.id,
                r,
                &r.currency,
                &r.rate_type,
                Some(r.template.as_str()),
                &mut push,
            );
            let negative = |v: &Option<Decimal>| v.is_some_and(|v| v < Decimal::ZERO);
            match &r.check {
                Check::CreditLimitExceeded => {}
                Check::ApproachingCreditLimit { percent } => {
                    if *percent <= Decimal::ZERO {
                        push(at.clone(), "percent must be positive".into());
                    }
                }
                Check::BalanceExceeds { amount } => {
                    if *amount < Decimal::ZERO {
                        push(at.clone(), "amount is negative".into());
                    }
                }
                Check::KeyStatistic {
                    history_id, source, ..
                } => {
                    if history_id.trim().is_empty() {
                        push(at.clone(), "history_id is empty".into());
                    } else if *source == StatisticSource::Condmon
                        && !CONDMON_STATISTICS.contains(&history_id.as_str())
                    {
                        push(
                            at.clone(),
                            format!(
                                "condmon keeps no statistic `{history_id}` (it keeps {}); use source = \"ERP\" for ERP history",
                                CONDMON_STATISTICS.join(", ")
                            ),
                        );
                    }
                }
                Check::EntryTypeReason {
                    entry_type,
                    min_amount,
                    days,
                    ..
                } => {
                    if entry_type.trim().is_empty() {
                        push(at.clone(), "entry_type is empty".into());
                    }
                    if min_amount.is_none() && days.is_none() {
                        push(at.clone(), "give min_amount, days or both".into());
                    }
                    if negative(min_amount) {
                        push(at.clone(), "min_amount is negative".into());
                    }
                }
                Check::DeductionItem {
                    min_amount,
                    min_days,
                } => {
                    if negative(min_amount) {
                        push(at.clone(), "min_amount is negative".into());
                    }
                    if min_days.is_some_and(|d| d < 0) {
                        push(at.clone(), "min_days is negative".into());
                    }
                }
                Check::DisputedItem { min_amount } => {
                    if negative(min_amount) {
                        push(at.clone(), "min_amount is negative".into());
                    }
                }
                Check::RiskScore { .. } => {}
            }
            let per_customer = r.check.is_item_level()
                || matches!(
                    r.check,
                    Check::KeyStatistic { .. } | Check::RiskScore { .. }
                );
            if per_customer && r.monitor != MonitorRole::BillTo {
                push(
                    at.clone(),
                    "item-level conditions and statistics monitor the bill-to customer only".into(),
                );
            }
        }
        // Amounts, thresholds, weights and range bounds travel in events as decimal(28, 4).
        for (at, value) in self.decimals() {
            if value.scale() > 4 && value.normalize().scale() > 4 {
                push(
                    at.clone(),
                    format!("{value} has more than 4 decimal places"),
                );
            }
            if value.abs() >= crate::model::validate::MAX_AMOUNT {
                push(
                    at,
                    format!("{value} is beyond ±{}", crate::model::validate::MAX_AMOUNT),
                );
            }
        }
        if let Some(id) = &self.options.override_scoring_rule
            && self.scoring_rule(id).is_none()
        {
            push(
                "options".into(),
                format!("override_scoring_rule `{id}` is not defined"),
            );
        }
        if !(1..=12).contains(&self.options.fiscal_year_start_month) {
            push(
                "options".into(),
                "fiscal_year_start_month must be 1 to 12".into(),
            );
        }
        let mut scopes = HashSet::new();
        for (i, r) in self.scoring_rules.iter().enumerate() {
            let at = format!("scoring_rule[{i}] ({})", r.id);
            if !scopes.insert((&r.set_id, &r.customer_group, &r.customer_id)) {
                push(
                    at.clone(),
                    "another scoring rule has the same setID, customer group and customer: which one scores would be a guess".into(),
                );
            }
            common(&at, &r.id, r, &r.currency, &r.rate_type, None, &mut push);
            if r.elements.is_empty() {
                push(
                    at.clone(),
                    "a scoring rule needs at least one element".into(),
                );
            }
            let total: Decimal = r.elements.iter().map(|e| e.weight).sum();
            if total != Decimal::ONE_HUNDRED {
                push(
                    at.clone(),
                    format!("element weights add up to {total}, not 100"),
                );
            }
            for (j, e) in r.elements.iter().enumerate() {
                let at = format!("{at}.element[{j}] ({})", e.name);
                if e.weight < Decimal::ZERO {
                    push(at.clone(), "weight is negative".into());
                }
                match (e.input.is_flag(), &e.flag, e.ranges.is_empty()) {
                    (true, Some(_), true) | (false, None, false) => {}
                    (true, _, _) => push(
                        at.clone(),
                        "a Y/N element needs `flag = { yes = …, no = … }` and no ranges".into(),
                    ),
                    (false, _, _) => push(
                        at.clone(),
                        "a numeric element needs ranges and no flag".into(),
                    ),
                }
                for (k, range) in e.ranges.iter().enumerate() {
                    if range.low > range.high {
                        push(format!("{at}.range[{k}]"), "low is above high".into());
                    }
                    if e.ranges[..k]
                        .iter()
                        .any(|o| range.low <= o.high && o.low <= range.high)
                    {
                        push(
                            format!("{at}.range[{k}]"),
                            "overlaps an earlier range".into(),
                        );
                    }
                }
                if let ScoringInput::History { history_id } = &e.input
                    && history_id.trim().is_empty()
                {
                    push(at.clone(), "history_id is empty".into());
                }
            }
        }
        directory::problems(&self.calendars, &self.owners, &mut push);
        if let Some(t) = &self.options.broken_promise_template
            && self.template(t).is_none()
        {
            push(
                "options".into(),
                format!("broken_promise_template `{t}` is not defined"),
            );
        }
        if !(366..=36_600).contains(&self.options.history_after_days) {
            push(
                "options".into(),
                "history_after_days must be 366 (a year of payments) to 36600".into(),
            );
        }
        if self.options.promise_grace_days > 366 {
            push(
                "options".into(),
                "promise_grace_days is more than a year".into(),
            );
        }
        errors
    }
}

impl RuleSet {
    /// Every decimal of the rule set, with where it is.
    fn decimals(&self) -> Vec<(String, Decimal)> {
        let mut out = Vec::new();
        for (i, r) in self.collection_rules.iter().enumerate() {
            out.push((
                format!("collection_rule[{i}] ({})", r.id),
                r.min_past_due_amount,
            ));
        }
        for (i, r) in self.assessment_rules.iter().enumerate() {
            let at = format!("assessment_rule[{i}] ({})", r.id);
            let values: Vec<Decimal> = match &r.check {
                Check::CreditLimitExceeded => vec![],
                Check::ApproachingCreditLimit { percent } => vec![*percent],
                Check::BalanceExceeds { amount } => vec![*amount],
                Check::KeyStatistic { threshold, .. } | Check::RiskScore { threshold, .. } => {
                    vec![*threshold]
                }
                Check::EntryTypeReason { min_amount, .. }
                | Check::DeductionItem { min_amount, .. }
                | Check::DisputedItem { min_amount } => min_amount.iter().copied().collect(),
            };
            out.extend(values.into_iter().map(|v| (at.clone(), v)));
        }
        for (i, r) in self.scoring_rules.iter().enumerate() {
            for (j, e) in r.elements.iter().enumerate() {
                let at = format!("scoring_rule[{i}] ({}).element[{j}] ({})", r.id, e.name);
                out.push((at.clone(), e.weight));
                for range in &e.ranges {
                    out.extend([range.low, range.high, range.value].map(|v| (at.clone(), v)));
                }
                if let Some(flag) = &e.flag {
                    out.extend([flag.yes, flag.no].map(|v| (at.clone(), v)));
                }
                if let ScoringInput::OldestItemPastDue { min_amount } = &e.input {
                    out.push((at.clone(), *min_amount));
                }
            }
        }
        out
    }
}

/// Rules grouped by what they decide (`kind`), kinds in the order they first appear, rules in
/// file order: one pass (this runs at every evaluation).
fn by_kind<'a, R, K: PartialEq>(rules: &'a [R], kind: impl Fn(&'a R) -> K) -> Vec<(K, Vec<&'a R>)> {
    let mut out: Vec<(K, Vec<&'a R>)> = Vec::new();
    for rule in rules {
        let k = kind(rule);
        match out.iter_mut().find(|(seen, _)| *seen == k) {
            Some((_, group)) => group.push(rule),
            None => out.push((k, vec![rule])),
        }
    }
    out
}

/// The rules of the lowest level present, in file order.
fn lowest_level<'a, R: Scoped + 'a>(rules: impl Iterator<Item = &'a R>) -> Vec<&'a R> {
    let rules: Vec<&R> = rules.collect();
    let Some(lowest) = rules.iter().map(|r| r.level()).min() else {
        return Vec::new();
    };
    rules.into_iter().filter(|r| r.level() == lowest).collect()
}

#[cfg(test)]
mod tests;
