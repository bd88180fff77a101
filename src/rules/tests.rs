use super::*;

const VALID: &str = r#"
version = 1
[[collection_rule]]
id = "COLL-30"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "500.00"
days_past_due = 30
template = "STD"
owner_type = "COLLECTOR"

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 3
[[template.step]]
days_after = 10
action_code = "DLTR"
action_parameter = "DUN1"
due_days = 5
automated = true
"#;

fn errors_of(text: &str) -> Vec<String> {
    match RuleSet::parse(text, "test") {
        Ok(_) => Vec::new(),
        Err(RulesError::Invalid { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_valid_rule_set_parses() {
    let rules = RuleSet::parse(VALID, "test").unwrap();
    assert_eq!(
        rules.collection_rules[0].min_past_due_amount,
        Decimal::new(50000, 2)
    );
    assert_eq!(rules.template("STD").unwrap().steps.len(), 2);
    assert_eq!(rules.applicable("SHARE", "C1", None).collection.len(), 1);
    assert!(rules.applicable("OTHER", "C1", None).collection.is_empty());
    assert_eq!(rules.collection_rules[0].rate_type, "CRRNT");
    assert_eq!(rules.options, Options::default());
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let text = VALID
        .replace("currency = \"USD\"", "currency = \"XXQ\"")
        .replace("template = \"STD\"", "template = \"NOPE\"")
        .replace("days_after = 10", "days_after = -1")
        .replace("due_days = 3", "due_days = 3\nnotify_owner_days = -400")
        .replace("due_days = 5", "due_days = 5000");
    let shown = errors_of(&text);
    for expected in [
        "template[0] (STD).step[1]: days_after -1 is negative",
        "template[0] (STD).step[0]: notify_owner_days -400 is more than a year from the due date",
        "template[0] (STD).step[1]: due_days 5000 is more than ten years",
        "template[0] (STD).step[1]: steps must be in order of days_after",
        "collection_rule[0] (COLL-30): `XXQ` is not an ISO 4217 currency code",
        "collection_rule[0] (COLL-30): template `NOPE` is not defined",
    ] {
        assert!(
            shown.contains(&expected.to_string()),
            "{expected}: {shown:?}"
        );
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let err =
        RuleSet::parse("version = 1\n[[collection_rule]]\nid = 5\n", "rules.toml").unwrap_err();
    assert!(err.to_string().contains("rules.toml"), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");
}

const LEVELS: &str = r#"
version = 1
[[collection_rule]]
id = "SET"
set_id = "SHARE"
currency = "USD"
min_past_due_amount = "1000"
days_past_due = 30
template = "STD"
owner_type = "COLLECTOR"

[[collection_rule]]
id = "GROUP"
set_id = "SHARE"
customer_group = "RETAIL"
currency = "USD"
min_past_due_amount = "500"
days_past_due = 15
template = "STD"
owner_type = "COLLECTOR"

[[collection_rule]]
id = "CUST"
set_id = "SHARE"
customer_id = "VIP"
currency = "USD"
min_past_due_amount = "50000"
days_past_due = 60
template = "STD"
owner_type = "COLLECTOR"

[[assessment_rule]]
id = "CRLE-SET"
set_id = "SHARE"
currency = "USD"
template = "STD"
check = { kind = "CREDIT_LIMIT_EXCEEDED" }

[[assessment_rule]]
id = "BALX-GROUP"
set_id = "SHARE"
customer_group = "RETAIL"
currency = "USD"
template = "STD"
check = { kind = "BALANCE_EXCEEDS", amount = "100000" }

[[template]]
id = "STD"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 3
"#;

fn ids(applicable: &Applicable<'_>) -> (Vec<String>, Vec<String>) {
    (
        applicable
            .collection
            .values()
            .flatten()
            .map(|r| r.id.clone())
            .collect(),
        applicable.assessment.iter().map(|r| r.id.clone()).collect(),
    )
}

#[test]
fn the_lowest_level_with_a_rule_for_a_condition_wins() {
    let rules = RuleSet::parse(LEVELS, "test").unwrap();
    let cases = [
        ("PLAIN", None, vec!["SET"], vec!["CRLE-SET"]),
        (
            "SHOP",
            Some("RETAIL"),
            vec!["GROUP"],
            vec!["CRLE-SET", "BALX-GROUP"],
        ),
        (
            "VIP",
            Some("RETAIL"),
            vec!["CUST"],
            vec!["CRLE-SET", "BALX-GROUP"],
        ),
        ("OTHERGRP", Some("WHOLESALE"), vec!["SET"], vec!["CRLE-SET"]),
    ];
    for (customer, group, collection, assessment) in cases {
        let (c, a) = ids(&rules.applicable("SHARE", customer, group));
        assert_eq!(c, collection, "{customer}");
        assert_eq!(a, assessment, "{customer}");
    }
}

#[test]
fn collection_rules_of_a_customer_come_highest_priority_first() {
    let text = LEVELS
        .replace(
            "id = \"GROUP\"\nset_id = \"SHARE\"\ncustomer_group = \"RETAIL\"",
            "id = \"GROUP\"\nset_id = \"SHARE\"\npriority = 5",
        )
        .replace(
            "id = \"SET\"\nset_id = \"SHARE\"",
            "id = \"SET\"\nset_id = \"SHARE\"\npriority = 1",
        );
    let rules = RuleSet::parse(&text, "test").unwrap();
    let (c, _) = ids(&rules.applicable("SHARE", "PLAIN", None));
    assert_eq!(c, vec!["GROUP", "SET"]);
}

#[test]
fn assessment_checks_are_validated() {
    let base = r#"
version = 1
[[template]]
id = "T"
[[template.step]]
days_after = 0
action_code = "CALL"
due_days = 1
"#;
    let rule = |check: &str| {
        format!(
            "{base}\n[[assessment_rule]]\nid = \"R\"\nset_id = \"SHARE\"\ncurrency = \"USD\"\ntemplate = \"T\"\ncheck = {check}\n"
        )
    };
    assert_eq!(
        errors_of(&rule(r#"{ kind = "DISPUTED_ITEM" }"#)),
        Vec::<String>::new()
    );
    let cases = [
        (
            r#"{ kind = "APPROACHING_CREDIT_LIMIT", percent = "0" }"#,
            "percent must be positive",
        ),
        (
            r#"{ kind = "BALANCE_EXCEEDS", amount = "-1" }"#,
            "amount is negative",
        ),
        (
            r#"{ kind = "KEY_STATISTIC", history_id = "PAST_DUE", comparison = "ABOVE", threshold = "1" }"#,
            "condmon keeps no statistic `PAST_DUE`",
        ),
        (
            r#"{ kind = "ENTRY_TYPE_REASON", entry_type = "DM" }"#,
            "give min_amount, days or both",
        ),
        (
            r#"{ kind = "DEDUCTION_ITEM", min_days = -3 }"#,
            "min_days is negative",
        ),
    ];
    for (check, expected) in cases {
        let shown = errors_of(&rule(check));
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("assessment_rule[0] (R): ") && e.contains(expected)),
            "{check}: {shown:?}"
        );
    }
    // An unknown kind is a parse error with its line.
    let shown = errors_of(&rule(r#"{ kind = "NOPE" }"#));
    assert!(shown[0].starts_with("line "), "{shown:?}");
    // ERP history may be any history id.
    assert!(
        errors_of(&rule(
            r#"{ kind = "KEY_STATISTIC", source = "ERP", history_id = "PAST_DUE", comparison = "ABOVE", threshold = "1" }"#
        ))
        .is_empty()
    );
}

#[test]
fn scopes_aging_categories_and_rule_ids_are_validated() {
    let text = format!(
        "{LEVELS}\n[[aging]]\nid = \"STD\"\n[[aging.category]]\nid = \"A\"\nfrom_days = 1\nto_days = 30\n[[aging.category]]\nid = \"B\"\nfrom_days = 30\n"
    )
    .replace(
        "id = \"CUST\"\nset_id = \"SHARE\"\ncustomer_id = \"VIP\"",
        "id = \"CUST\"\nset_id = \"SHARE\"\ncustomer_id = \"VIP\"\ncustomer_group = \"RETAIL\"",
    )
    .replace("days_past_due = 15", "aging_id = \"STD\"\naging_category = \"C\"")
    .replace("id = \"CRLE-SET\"", "id = \"SET\"");
    let shown = errors_of(&text);
    for expected in [
        "collection_rule[2] (CUST): a rule is for a customer group or for a customer, not both",
        "collection_rule[1] (GROUP): aging `STD` has no category `C`",
        "assessment_rule[0] (SET): rule id `SET` is defined twice",
        "aging[0] (STD).category[1] (B): overlaps the previous category (from_days 30 <= 30)",
    ] {
        assert!(
            shown.contains(&expected.to_string()),
            "{expected}: {shown:?}"
        );
    }
}

#[test]
fn promise_options_are_validated() {
    let text = VALID.replace(
        "version = 1\n",
        "version = 1\n[options]\npromise_grace_days = 400\nbroken_promise_template = \"NOPE\"\n",
    );
    let shown = errors_of(&text);
    for expected in [
        "options: broken_promise_template `NOPE` is not defined",
        "options: promise_grace_days is more than a year",
    ] {
        assert!(
            shown.contains(&expected.to_string()),
            "{expected}: {shown:?}"
        );
    }
    let fine = VALID.replace(
        "version = 1\n",
        "version = 1\n[options]\npromise_grace_days = 2\nbroken_promise_template = \"STD\"\n",
    );
    assert_eq!(errors_of(&fine), Vec::<String>::new());
}
