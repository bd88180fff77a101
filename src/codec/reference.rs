//! The reference of the input fields, generated from the schemas themselves (`condmon schemas
//! doc`): every field of the current schema of each stream an ERP or a tool writes, with its
//! type, whether it is required and what it means (the schema's `doc`). The README carries
//! the same text, checked by a test, so the reference cannot drift from the schemas.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use super::{CatalogError, Manifest};
use crate::model::Stream;

/// The Markdown reference of the current schemas of `dir` (a `manifest.toml` and its files).
pub fn markdown(dir: &Path) -> Result<String, CatalogError> {
    let (read, invalid) = (super::read_file, super::invalid_file);
    let manifest_path = dir.join("manifest.toml");
    let manifest: Manifest = toml::from_str(&read(&manifest_path)?)
        .map_err(|e| invalid(&manifest_path, e.to_string()))?;
    let mut out = String::new();
    for stream in Stream::FROM_OUTSIDE {
        let Some(entry) = manifest
            .schema
            .iter()
            .filter(|e| e.stream == stream)
            .max_by_key(|e| e.id)
        else {
            return Err(invalid(
                &manifest_path,
                format!("no schema for stream `{}`", stream.as_str()),
            ));
        };
        let path = dir.join(&entry.file);
        let schema: Json =
            serde_json::from_str(&read(&path)?).map_err(|e| invalid(&path, e.to_string()))?;
        out.push_str(&format!(
            "#### {} (`{}`, schema id {})\n\n{}\n\n| field | type | required | meaning |\n| --- | --- | --- | --- |\n",
            stream.as_str(),
            schema["name"].as_str().unwrap_or("?"),
            entry.id,
            cell(schema["doc"].as_str().unwrap_or(""))
        ));
        let mut rows = Vec::new();
        fields(&schema, "", &mut HashMap::new(), &mut rows);
        for row in rows {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                row.name,
                row.kind,
                if row.required { "yes" } else { "no" },
                cell(&row.doc)
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

struct Row {
    name: String,
    kind: String,
    required: bool,
    doc: String,
}

/// A Markdown table cell: no line breaks, `|` escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

/// The rows of a record's fields, nested records' fields after their field (`parent.child`,
/// `list[].child`).
fn fields<'a>(
    record: &'a Json,
    prefix: &str,
    named: &mut HashMap<String, &'a Json>,
    out: &mut Vec<Row>,
) {
    for field in record["fields"].as_array().into_iter().flatten() {
        let name = format!("{prefix}{}", field["name"].as_str().unwrap_or("?"));
        let (kind, optional, nested) = describe(&field["type"], named);
        out.push(Row {
            name: name.clone(),
            kind,
            required: field.get("default").is_none() && !optional,
            doc: field["doc"].as_str().unwrap_or("").to_string(),
        });
        if let Some((record, suffix)) = nested {
            fields(record, &format!("{name}{suffix}."), named, out);
        }
    }
}

/// A type's description, whether null is allowed, and the record nested in it (with the
/// suffix its fields' names take).
fn describe<'a>(
    schema: &'a Json,
    named: &mut HashMap<String, &'a Json>,
) -> (String, bool, Option<(&'a Json, &'static str)>) {
    match schema {
        Json::String(name) => match named.get(name.as_str()).copied() {
            Some(defined) => describe(defined, named),
            None => (name.clone(), false, None),
        },
        Json::Array(branches) => {
            let optional = branches.iter().any(|b| b == "null");
            let others: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            match others.as_slice() {
                [only] => {
                    let (kind, _, nested) = describe(only, named);
                    (kind, optional, nested)
                }
                _ => {
                    let kinds: Vec<String> = others.iter().map(|b| describe(b, named).0).collect();
                    (kinds.join(" or "), optional, None)
                }
            }
        }
        Json::Object(object) => {
            if let Some(name) = object.get("name").and_then(Json::as_str) {
                named.insert(name.to_string(), schema);
            }
            let logical = object.get("logicalType").and_then(Json::as_str);
            match (object.get("type").and_then(Json::as_str), logical) {
                (_, Some("decimal")) => (
                    format!(
                        "decimal (scale {}; a string in JSON)",
                        object.get("scale").and_then(Json::as_u64).unwrap_or(0)
                    ),
                    false,
                    None,
                ),
                (_, Some("date")) => ("date (YYYY-MM-DD in JSON)".into(), false, None),
                (Some("enum"), _) => {
                    let symbols: Vec<&str> = object["symbols"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str)
                        .collect();
                    (format!("one of {}", symbols.join(", ")), false, None)
                }
                (Some("record"), _) => ("record".into(), false, Some((schema, ""))),
                (Some("array"), _) => {
                    let (items, _, nested) = describe(&object["items"], named);
                    let nested = nested.map(|(record, _)| (record, "[]"));
                    (format!("array of {items}"), false, nested)
                }
                (Some(other), _) => (other.to_string(), false, None),
                (None, _) => ("?".into(), false, None),
            }
        }
        other => (other.to_string(), false, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_field_has_a_meaning_and_the_shapes_are_named() {
        let text = markdown(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap();
        assert!(text.contains("#### items (`ItemChange`, schema id 1021)"));
        assert!(text.contains(
            "| `item_type` | one of INVOICE, DEBIT_MEMO, CREDIT_MEMO, CHARGEBACK, DEDUCTION, ON_ACCOUNT | yes |"
        ));
        assert!(text.contains("| `open_amount` | decimal (scale 4; a string in JSON) | yes |"));
        assert!(text.contains("| `entry_reason` | string | no |"));
        assert!(
            text.contains("| `applications[].item_id` | string | yes |"),
            "nested"
        );
        let empty: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| `") && l.ends_with("|  |"))
            .collect();
        assert!(empty.is_empty(), "fields without a meaning: {empty:?}");
    }
}
