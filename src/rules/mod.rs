//! Collection rules and action templates: parsed from TOML and validated once, then shared
//! read-only by the engine. `condmon rules check FILE` prints every problem with its location.

use std::collections::HashSet;
use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::OwnerType;

/// A whole rule set, as one versioned document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub version: u32,
    #[serde(default, rename = "collection_rule")]
    pub collection_rules: Vec<CollectionRule>,
    #[serde(default, rename = "template")]
    pub templates: Vec<ActionTemplate>,
}

/// "A customer whose past-due amount is at least `min_past_due_amount` and whose oldest
/// past-due item is more than `days_past_due` days past due is in violation."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionRule {
    pub id: String,
    pub set_id: String,
    #[serde(default)]
    pub description: String,
    /// Condition code reported on actions (COLL for collection rules).
    #[serde(default = "default_condition")]
    pub condition: String,
    /// Amounts are compared in this currency.
    pub currency: String,
    pub min_past_due_amount: Decimal,
    pub days_past_due: i32,
    pub template: String,
    pub owner_type: OwnerType,
}

fn default_condition() -> String {
    "COLL".to_string()
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

    /// The collection rules that apply to customers of `set_id`.
    pub fn collection_rules_for<'a>(
        &'a self,
        set_id: &'a str,
    ) -> impl Iterator<Item = &'a CollectionRule> {
        self.collection_rules
            .iter()
            .filter(move |r| r.set_id == set_id)
    }

    fn problems(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut push =
            |location: String, message: String| errors.push(RuleError { location, message });
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
                if s.action_code.trim().is_empty() {
                    push(at.clone(), "action_code is empty".into());
                }
            }
        }
        let mut rule_ids = HashSet::new();
        for (i, r) in self.collection_rules.iter().enumerate() {
            let at = format!("collection_rule[{i}] ({})", r.id);
            if !rule_ids.insert(r.id.as_str()) {
                push(at.clone(), format!("rule id `{}` is defined twice", r.id));
            }
            if r.id.trim().is_empty() {
                push(at.clone(), "id is empty".into());
            }
            if iso_currency::Currency::from_code(&r.currency).is_none() {
                push(
                    at.clone(),
                    format!("`{}` is not an ISO 4217 currency code", r.currency),
                );
            }
            if r.min_past_due_amount < Decimal::ZERO {
                push(at.clone(), "min_past_due_amount is negative".into());
            }
            if r.days_past_due < 0 {
                push(at.clone(), "days_past_due is negative".into());
            }
            if !template_ids.contains(r.template.as_str()) {
                push(
                    at.clone(),
                    format!("template `{}` is not defined", r.template),
                );
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_valid_rule_set_parses() {
        let rules = RuleSet::parse(VALID, "test").unwrap();
        assert_eq!(
            rules.collection_rules[0].min_past_due_amount,
            Decimal::new(50000, 2)
        );
        assert_eq!(rules.template("STD").unwrap().steps.len(), 2);
        assert_eq!(rules.collection_rules_for("SHARE").count(), 1);
        assert_eq!(rules.collection_rules_for("OTHER").count(), 0);
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let text = VALID
            .replace("currency = \"USD\"", "currency = \"XXQ\"")
            .replace("template = \"STD\"", "template = \"NOPE\"")
            .replace("days_after = 10", "days_after = -1");
        let RulesError::Invalid { errors, .. } = RuleSet::parse(&text, "test").unwrap_err() else {
            panic!("expected validation errors");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(&"template[0] (STD).step[1]: days_after -1 is negative".to_string()),
            "{shown:?}"
        );
        assert!(shown.contains(
            &"template[0] (STD).step[1]: steps must be in order of days_after".to_string()
        ));
        assert!(shown.contains(
            &"collection_rule[0] (COLL-30): `XXQ` is not an ISO 4217 currency code".to_string()
        ));
        assert!(
            shown.contains(
                &"collection_rule[0] (COLL-30): template `NOPE` is not defined".to_string()
            )
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err =
            RuleSet::parse("version = 1\n[[collection_rule]]\nid = 5\n", "rules.toml").unwrap_err();
        assert!(err.to_string().contains("rules.toml"), "{err}");
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
