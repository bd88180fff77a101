//! Risk scores: the manual's two worked examples to the cent, every element with a boundary,
//! levels and the override rule, conversion, missing data and division by zero, and no event
//! for a change that does not move the score.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::risk::{fiscal_period, score};
use super::*;
use crate::model::{
    AgingBucket, AgingSnapshot, CreditAgencyRecord, CustomerChange, ElementStatus, FxRate,
    HistoryChange, InputEvent, ItemChange, ItemType, RiskScoreEvent,
};
use crate::rules::FiscalPeriod;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn key() -> CustomerKey {
    CustomerKey::new("SHARE", "A")
}

/// The manual's example rule: AVGDAYS (system-defined history, 15 %) and the 121+ aging
/// category (85 %).
const SEED_RULE: &str = r#"
version = 7
[[scoring_rule]]
id = "RISK1"
set_id = "SHARE"
currency = "USD"

[[scoring_rule.element]]
name = "AVGDAYS"
weight = "15"
input = { kind = "HISTORY", history_id = "AVG_DAYS_LATE" }
ranges = [
  { low = "-99999", high = "35", value = "1" },
  { low = "36", high = "56", value = "2" },
  { low = "57", high = "99999", value = "3" },
]

[[scoring_rule.element]]
name = "06 121+"
weight = "85"
input = { kind = "AGING", aging_id = "STD", category = "06 121+" }
ranges = [
  { low = "-999999999", high = "1000", value = "5" },
  { low = "1001", high = "10000", value = "10" },
  { low = "10001", high = "999999999", value = "15" },
]
"#;

fn rules(text: &str) -> RuleSet {
    RuleSet::parse(text, "test").unwrap()
}

fn history(id: &str, value: &str, fy: i32, period: i32) -> InputEvent {
    InputEvent::History(HistoryChange {
        set_id: "SHARE".into(),
        customer_id: "A".into(),
        business_unit: "US001".into(),
        history_id: id.into(),
        fiscal_year: fy,
        accounting_period: period,
        value: dec(value),
        currency: None,
    })
}

fn aging(category: &str, amount: &str, currency: &str) -> InputEvent {
    InputEvent::Aging(AgingSnapshot {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "A".into(),
        aging_id: "STD".into(),
        as_of_date: d("2026-03-31"),
        currency: currency.into(),
        buckets: vec![AgingBucket {
            category: category.into(),
            amount: dec(amount),
        }],
    })
}

fn state_with(events: Vec<InputEvent>) -> CustomerState {
    let mut state = CustomerState::default();
    for e in events {
        state.apply(e, d("2026-03-31"));
    }
    state
}

fn total(rules: &RuleSet, state: &CustomerState, fx: &FxTable, today: &str) -> Decimal {
    let rule = rules.scoring_rule_for("SHARE", "A", state.group()).unwrap();
    score(state, rule, rules, fx, d(today)).total
}

#[test]
fn the_manuals_customer_a_scores_8_80_and_customer_b_8_65() {
    let rules = rules(SEED_RULE);
    let fx = FxTable::default();
    let a = state_with(vec![
        history("AVG_DAYS_LATE", "50", 2026, 3),
        aging("06 121+", "8000", "USD"),
    ]);
    let rule = &rules.scoring_rules[0];
    let scored = score(&a, rule, &rules, &fx, d("2026-03-31"));
    assert_eq!(scored.total, dec("8.80"));
    let breakdown: Vec<_> = scored
        .elements
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.group.as_str(),
                e.input_value,
                e.range_value,
                e.score,
            )
        })
        .collect();
    assert_eq!(
        breakdown,
        vec![
            (
                "AVGDAYS",
                "SYSTEM_HISTORY",
                Some(dec("50")),
                Some(dec("2")),
                dec("0.30")
            ),
            (
                "06 121+",
                "AGING",
                Some(dec("8000")),
                Some(dec("10")),
                dec("8.50")
            ),
        ]
    );
    assert!(scored.complete);
    let b = state_with(vec![
        history("AVG_DAYS_LATE", "30", 2026, 3),
        aging("06 121+", "10000", "USD"),
    ]);
    assert_eq!(
        score(&b, rule, &rules, &fx, d("2026-03-31")).total,
        dec("8.65")
    );
}

#[test]
fn range_edges_and_values_outside_every_range() {
    let rules = rules(SEED_RULE);
    let fx = FxTable::default();
    let avgdays = |days: &str| {
        let state = state_with(vec![
            history("AVG_DAYS_LATE", days, 2026, 3),
            aging("06 121+", "0", "USD"),
        ]);
        score(
            &state,
            &rules.scoring_rules[0],
            &rules,
            &fx,
            d("2026-03-31"),
        )
        .elements[0]
            .clone()
    };
    assert_eq!(avgdays("35").range_value, Some(dec("1")));
    assert_eq!(avgdays("36").range_value, Some(dec("2")));
    assert_eq!(avgdays("56").range_value, Some(dec("2")));
    assert_eq!(avgdays("57").range_value, Some(dec("3")));
    let between = avgdays("35.5");
    assert_eq!(
        (between.status, between.score),
        (ElementStatus::NoRange, Decimal::ZERO)
    );
    assert_eq!(
        between.detail.as_deref(),
        Some("35.5 is outside every range")
    );
}

#[test]
fn history_is_read_for_the_run_dates_fiscal_period_or_the_rules() {
    assert_eq!(
        fiscal_period(d("2026-03-31"), 1),
        FiscalPeriod {
            fiscal_year: 2026,
            period: 3
        }
    );
    assert_eq!(
        fiscal_period(d("2026-07-01"), 7),
        FiscalPeriod {
            fiscal_year: 2027,
            period: 1
        }
    );
    assert_eq!(
        fiscal_period(d("2026-06-30"), 7),
        FiscalPeriod {
            fiscal_year: 2026,
            period: 12
        }
    );
    let rules_by_date = rules(SEED_RULE);
    let fx = FxTable::default();
    let state = state_with(vec![
        history("AVG_DAYS_LATE", "50", 2026, 2),
        aging("06 121+", "8000", "USD"),
    ]);
    let scored = score(
        &state,
        &rules_by_date.scoring_rules[0],
        &rules_by_date,
        &fx,
        d("2026-03-31"),
    );
    assert_eq!(
        scored.elements[0].status,
        ElementStatus::MissingInput,
        "no history for 2026/3"
    );
    assert_eq!(
        scored.elements[0].detail.as_deref(),
        Some("no AVG_DAYS_LATE history for 2026/3")
    );
    assert!(!scored.complete);
    assert_eq!(
        scored.total,
        dec("8.50"),
        "the missing element scores nothing, visibly"
    );
    let given = rules(&SEED_RULE.replace(
        "currency = \"USD\"\n",
        "currency = \"USD\"\nhistory_period = { fiscal_year = 2026, period = 2 }\n",
    ));
    assert_eq!(total(&given, &state, &fx, "2026-03-31"), dec("8.80"));
}

fn element_rule(input: &str, ranges: &str) -> RuleSet {
    rules(&format!(
        "version = 1\n[[scoring_rule]]\nid = \"R\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\n[[scoring_rule.element]]\nname = \"E\"\nweight = \"100\"\ninput = {input}\n{ranges}\n"
    ))
}

const STEPS: &str = "ranges = [ { low = \"-999999999\", high = \"0\", value = \"0\" }, { low = \"0.0001\", high = \"100\", value = \"1\" }, { low = \"100.0001\", high = \"999999999\", value = \"2\" } ]";

fn item(id: &str, open: &str, due: &str) -> InputEvent {
    InputEvent::Item(ItemChange {
        set_id: "SHARE".into(),
        business_unit: "US001".into(),
        customer_id: "A".into(),
        item_id: id.into(),
        item_line: 0,
        item_type: ItemType::Invoice,
        original_amount: dec(open),
        open_amount: dec(open),
        currency: "USD".into(),
        accounting_date: d(due) - chrono::Duration::days(30),
        due_date: d(due),
        entry_type: "IN".into(),
        entry_reason: None,
        disputed_amount: Decimal::ZERO,
        ar_specialist: None,
        collector: None,
        origin_item_id: None,
        origin_item_line: None,
        origin_payment_id: None,
    })
}

fn master(limit: Option<&str>, hold: bool) -> InputEvent {
    InputEvent::Customer(CustomerChange {
        set_id: "SHARE".into(),
        customer_id: "A".into(),
        name: "A".into(),
        customer_group: None,
        currency: "USD".into(),
        credit_limit: limit.map(dec),
        credit_limit_pct_over: Some(dec("10")),
        profile_id: None,
        collector: None,
        credit_analyst: None,
        sales_person: None,
        corporate_parent: None,
        remit_from_parent: None,
        correspondence_parent: None,
        credit_hold: hold,
        country: None,
        state: None,
        exclude_from_dunning: false,
        sites: vec![],
    })
}

fn agency(total_assets: &str, liabilities: &str) -> InputEvent {
    InputEvent::CreditAgency(CreditAgencyRecord {
        set_id: "SHARE".into(),
        customer_id: "A".into(),
        duns_number: "123456789".into(),
        report_date: d("2026-01-15"),
        currency: "USD".into(),
        sales: Some(dec("900")),
        total_assets: Some(dec(total_assets)),
        current_assets: Some(dec("400")),
        total_current_liabilities: Some(dec(liabilities)),
        net_income: Some(dec("60")),
        inventory: Some(dec("100")),
        paydex: Some(dec("72")),
    })
}

/// (input value, status) of the one element on `today`.
fn input_of(
    input: &str,
    events: Vec<InputEvent>,
    today: &str,
) -> (Option<Decimal>, Option<String>, ElementStatus) {
    let rules = if input.contains("EXCEEDED") || input.contains("CREDIT_HOLD") {
        element_rule(input, "flag = { yes = \"10\", no = \"1\" }")
    } else {
        element_rule(input, STEPS)
    };
    let state = state_with(events);
    let e = score(
        &state,
        &rules.scoring_rules[0],
        &rules,
        &FxTable::default(),
        d(today),
    )
    .elements[0]
        .clone();
    (e.input_value, e.input_flag, e.status)
}

#[test]
fn every_element_reads_its_input() {
    use ElementStatus::*;
    let ledger = || {
        vec![
            master(Some("1000"), false),
            item("I1", "300", "2026-03-01"),
            item("I2", "500", "2026-03-31"),
            item("I3", "200", "2026-05-01"),
        ]
    };
    // (element, items, as-of date, expected input, expected flag, expected status)
    type Case<'a> = (
        &'a str,
        Vec<InputEvent>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        ElementStatus,
    );
    let cases: Vec<Case> = vec![
        // Due on the run date counts as past due for the largest item (the manual: <=).
        (
            r#"{ kind = "LARGEST_PAST_DUE_ITEM" }"#,
            ledger(),
            "2026-03-31",
            Some("500"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "LARGEST_PAST_DUE_ITEM" }"#,
            ledger(),
            "2026-03-30",
            Some("300"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "OLDEST_ITEM_PAST_DUE", min_amount = "300" }"#,
            ledger(),
            "2026-03-31",
            Some("30"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "OLDEST_ITEM_PAST_DUE", min_amount = "300.01" }"#,
            ledger(),
            "2026-03-31",
            Some("0"),
            None,
            Scored,
        ),
        // Balance 1,000 of 1,000 × 1.10.
        (
            r#"{ kind = "APPROACHING_CREDIT_LIMIT_PERCENT" }"#,
            ledger(),
            "2026-03-31",
            Some("90.9091"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "BALANCE_DUE" }"#,
            ledger(),
            "2026-03-31",
            Some("1000"),
            None,
            Scored,
        ),
        // Past due (before the run date): 300 of 1,000.
        (
            r#"{ kind = "PERCENT_OF_BALANCE_PAST_DUE" }"#,
            ledger(),
            "2026-03-31",
            Some("30"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "PERCENT_OF_BALANCE_PAST_DUE" }"#,
            vec![master(Some("1000"), false)],
            "2026-03-31",
            None,
            None,
            DivisionByZero,
        ),
        (
            r#"{ kind = "EXCEEDED_CREDIT_LIMIT" }"#,
            ledger(),
            "2026-03-31",
            None,
            Some("N"),
            Scored,
        ),
        (
            r#"{ kind = "EXCEEDED_CREDIT_LIMIT" }"#,
            {
                let mut l = ledger();
                l.push(item("I4", "100.01", "2026-06-01"));
                l
            },
            "2026-03-31",
            None,
            Some("Y"),
            Scored,
        ),
        (
            r#"{ kind = "EXCEEDED_CREDIT_LIMIT" }"#,
            vec![master(None, false)],
            "2026-03-31",
            None,
            None,
            MissingInput,
        ),
        (
            r#"{ kind = "CREDIT_HOLD" }"#,
            vec![master(None, true)],
            "2026-03-31",
            None,
            Some("Y"),
            Scored,
        ),
        (
            r#"{ kind = "CUSTOMER_FIELD", field = "CREDIT_LIMIT" }"#,
            ledger(),
            "2026-03-31",
            Some("1000"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "CREDIT_AGENCY_FIELD", field = "PAYDEX" }"#,
            vec![agency("1000", "200")],
            "2026-03-31",
            Some("72"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "CREDIT_AGENCY_FIELD", field = "SALES" }"#,
            vec![],
            "2026-03-31",
            None,
            None,
            MissingInput,
        ),
        // 200 / 400.
        (
            r#"{ kind = "DEBT_RATIO" }"#,
            vec![agency("1000", "200")],
            "2026-03-31",
            Some("0.5"),
            None,
            Scored,
        ),
        // 900 / 1000.
        (
            r#"{ kind = "ASSET_TURNOVER" }"#,
            vec![agency("1000", "200")],
            "2026-03-31",
            Some("0.9"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "ASSET_TURNOVER" }"#,
            vec![agency("0", "200")],
            "2026-03-31",
            None,
            None,
            DivisionByZero,
        ),
        // (60 / 1000) − 200, as the manual gives it.
        (
            r#"{ kind = "RETURN_ON_EQUITY" }"#,
            vec![agency("1000", "200")],
            "2026-03-31",
            Some("-199.94"),
            None,
            Scored,
        ),
        // (1000 − 100) / 200.
        (
            r#"{ kind = "ACID_TEST" }"#,
            vec![agency("1000", "200")],
            "2026-03-31",
            Some("4.5"),
            None,
            Scored,
        ),
        (
            r#"{ kind = "ACID_TEST" }"#,
            vec![agency("1000", "0")],
            "2026-03-31",
            None,
            None,
            DivisionByZero,
        ),
        (
            r#"{ kind = "HISTORY", history_id = "MY_OWN" }"#,
            vec![history("MY_OWN", "7", 2026, 3)],
            "2026-03-31",
            Some("7"),
            None,
            Scored,
        ),
    ];
    for (input, events, today, value, flag, status) in cases {
        assert_eq!(
            input_of(input, events, today),
            (value.map(dec), flag.map(String::from), status),
            "{input} on {today}"
        );
    }
}

#[test]
fn amounts_are_converted_to_the_rules_currency_and_a_missing_rate_is_reported() {
    let rules = rules(&SEED_RULE.replace("currency = \"USD\"\n", "currency = \"EUR\"\n"));
    let state = state_with(vec![
        history("AVG_DAYS_LATE", "50", 2026, 3),
        aging("06 121+", "11000", "USD"),
    ]);
    let mut fx = FxTable::default();
    let scored = score(
        &state,
        &rules.scoring_rules[0],
        &rules,
        &fx,
        d("2026-03-31"),
    );
    assert_eq!(scored.elements[1].status, ElementStatus::MissingRate);
    assert_eq!(
        scored.elements[1].detail.as_deref(),
        Some("no CRRNT rate from USD to EUR")
    );
    fx.insert(&FxRate {
        rate_type: "CRRNT".into(),
        from_currency: "EUR".into(),
        to_currency: "USD".into(),
        effective_date: d("2026-01-01"),
        rate: dec("1.1"),
    });
    // 11,000 USD = 10,000 EUR: the 1,001–10,000 range, not 10,001+.
    let scored = score(
        &state,
        &rules.scoring_rules[0],
        &rules,
        &fx,
        d("2026-03-31"),
    );
    assert_eq!(scored.elements[1].input_value, Some(dec("10000")));
    assert_eq!(scored.total, dec("8.80"));
}

#[test]
fn the_lowest_level_scores_unless_an_override_rule_is_named() {
    let text = format!(
        "{SEED_RULE}\n[[scoring_rule]]\nid = \"VIP\"\nset_id = \"SHARE\"\ncustomer_id = \"A\"\ncurrency = \"USD\"\n[[scoring_rule.element]]\nname = \"HOLD\"\nweight = \"100\"\ninput = {{ kind = \"CREDIT_HOLD\" }}\nflag = {{ yes = \"9\", no = \"2\" }}\n"
    );
    let by_level = rules(&text);
    let state = state_with(vec![master(None, false)]);
    assert_eq!(
        by_level.scoring_rule_for("SHARE", "A", None).unwrap().id,
        "VIP"
    );
    assert_eq!(
        by_level.scoring_rule_for("SHARE", "B", None).unwrap().id,
        "RISK1"
    );
    assert_eq!(
        total(&by_level, &state, &FxTable::default(), "2026-03-31"),
        dec("2")
    );
    let overridden = rules(&text.replacen(
        "version = 7",
        "version = 7\n[options]\noverride_scoring_rule = \"RISK1\"",
        1,
    ));
    assert_eq!(
        overridden.scoring_rule_for("SHARE", "A", None).unwrap().id,
        "RISK1"
    );
}

fn risk_events(out: &[OutputEvent]) -> Vec<&RiskScoreEvent> {
    out.iter()
        .filter_map(|e| match e {
            OutputEvent::RiskScore(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn a_score_event_is_emitted_only_when_the_total_or_an_element_changes() {
    let rules = rules(SEED_RULE);
    let fx = FxTable::default();
    let mut state = state_with(vec![
        history("AVG_DAYS_LATE", "50", 2026, 3),
        aging("06 121+", "8000", "USD"),
    ]);
    let out = reconcile(&mut state, &key(), &rules, &fx, d("2026-03-31"));
    let events = risk_events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].total,
            events[0].rule_id.as_str(),
            events[0].rule_version
        ),
        (dec("8.80"), "RISK1", 7)
    );
    // Another aging run in the same range: the element's input changes, so an event.
    state.apply(aging("06 121+", "9000", "USD"), d("2026-03-31"));
    let out = reconcile(&mut state, &key(), &rules, &fx, d("2026-03-31"));
    assert_eq!(risk_events(&out)[0].total, dec("8.80"));
    assert_eq!(
        risk_events(&out)[0].elements[1].input_value,
        Some(dec("9000"))
    );
    // A change no element reads: no event.
    state.apply(item("I1", "5", "2026-06-01"), d("2026-03-31"));
    assert!(risk_events(&reconcile(&mut state, &key(), &rules, &fx, d("2026-03-31"))).is_empty());
    // A new fiscal period without history: the element goes missing, by timer.
    let timers = wanted_timers(&state, &key(), &rules, &fx, d("2026-03-31"));
    assert!(
        timers.contains(&(AGEING_TIMER.to_string(), d("2026-04-01"))),
        "{timers:?}"
    );
    let out = reconcile(&mut state, &key(), &rules, &fx, d("2026-04-01"));
    assert_eq!(
        risk_events(&out)[0].elements[0].status,
        ElementStatus::MissingInput
    );
}

#[test]
fn the_oldest_item_wakes_the_customer_when_its_days_cross_a_range_edge() {
    let rules = element_rule(
        r#"{ kind = "OLDEST_ITEM_PAST_DUE", min_amount = "0" }"#,
        "ranges = [ { low = \"-99999\", high = \"30\", value = \"1\" }, { low = \"31\", high = \"99999\", value = \"5\" } ]",
    );
    let state = state_with(vec![item("I1", "100", "2026-03-01")]);
    // 10 days late on 2026-03-11; 31 days on 2026-04-01.
    let timers = wanted_timers(
        &state,
        &CustomerKey::new("SHARE", "A"),
        &rules,
        &FxTable::default(),
        d("2026-03-11"),
    );
    assert_eq!(timers, vec![(AGEING_TIMER.to_string(), d("2026-04-01"))]);
}

#[test]
fn a_condition_can_be_on_the_risk_score() {
    let text = format!(
        "{SEED_RULE}\n[[assessment_rule]]\nid = \"RISKY\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\ntemplate = \"T\"\ncheck = {{ kind = \"RISK_SCORE\", comparison = \"ABOVE\", threshold = \"8.80\" }}\n[[template]]\nid = \"T\"\n[[template.step]]\ndays_after = 0\naction_code = \"ALRT\"\ndue_days = 1\n"
    );
    let rules = rules(&text);
    let fx = FxTable::default();
    let mut state = state_with(vec![
        history("AVG_DAYS_LATE", "50", 2026, 3),
        aging("06 121+", "8000", "USD"),
    ]);
    reconcile(&mut state, &key(), &rules, &fx, d("2026-03-31"));
    assert!(state.violations.is_empty(), "8.80 is not above 8.80");
    state.apply(history("AVG_DAYS_LATE", "60", 2026, 3), d("2026-03-31"));
    let out = reconcile(&mut state, &key(), &rules, &fx, d("2026-03-31"));
    assert_eq!(risk_events(&out)[0].total, dec("8.95"));
    assert!(state.violations.contains_key("RISKY"));
}

#[test]
fn scoring_rules_are_validated() {
    let bad = SEED_RULE
        .replace("weight = \"85\"", "weight = \"80\"")
        .replace(
            "{ low = \"36\", high = \"56\", value = \"2\" }",
            "{ low = \"30\", high = \"56\", value = \"2\" }",
        );
    let err = RuleSet::parse(&bad, "test").unwrap_err().to_string();
    assert!(
        err.contains("scoring_rule[0] (RISK1): element weights add up to 95, not 100"),
        "{err}"
    );
    assert!(
        err.contains(
            "scoring_rule[0] (RISK1).element[0] (AVGDAYS).range[1]: overlaps an earlier range"
        ),
        "{err}"
    );
    let flag_with_ranges = format!(
        "version = 1\n[[scoring_rule]]\nid = \"R\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\n[[scoring_rule.element]]\nname = \"E\"\nweight = \"100\"\ninput = {{ kind = \"CREDIT_HOLD\" }}\n{STEPS}\n"
    );
    let err = RuleSet::parse(&flag_with_ranges, "test")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("element[0] (E): a Y/N element needs `flag"),
        "{err}"
    );
}

#[test]
fn a_condition_on_an_incomplete_score_is_blocked_not_guessed() {
    let text = format!(
        "{SEED_RULE}\n[[assessment_rule]]\nid = \"SAFE\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\ntemplate = \"T\"\ncheck = {{ kind = \"RISK_SCORE\", comparison = \"BELOW\", threshold = \"9\" }}\n[[template]]\nid = \"T\"\n[[template.step]]\ndays_after = 0\naction_code = \"ALRT\"\ndue_days = 1\n"
    );
    let rules = rules(&text);
    // No aging run: the 121+ element is missing, the total (0.30) is not a real score.
    let mut state = state_with(vec![history("AVG_DAYS_LATE", "50", 2026, 3)]);
    let out = reconcile(
        &mut state,
        &key(),
        &rules,
        &FxTable::default(),
        d("2026-03-31"),
    );
    assert!(state.violations.is_empty(), "{out:?}");
    assert_eq!(
        state.blocked["SAFE"].reasons,
        vec!["risk score element 06 121+: no STD aging for the customer".to_string()]
    );
}
