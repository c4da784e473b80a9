//! The configuration reference (`docs/configuration.md`), generated from
//! the config's JSON Schema — itself generated from the config types — so
//! the reference says what the code accepts: every key, its type, its
//! default, and the doc comment of its field. `switchyard schema
//! --reference --out docs/configuration.md` writes it; a test fails when
//! the committed file drifts.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

/// The reference, as Markdown.
pub fn markdown() -> String {
    let schema = super::json_schema();
    let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         Generated from the config types by `switchyard schema --reference --out docs/configuration.md`\n\
         (a test fails when it drifts); the JSON Schema is `schemas/gateway.schema.json`.\n\
         Every value may use `${NAME}`, `${NAME:-default}` and `${NAME:?message}`.\n\
         Durations are written `250ms`, `2s`, `1m`; sizes `64KiB`, `1MB`.\n\n",
    );
    out.push_str("## Top level\n\n");
    table(&mut out, &schema);
    // Each type once, in the order they are first reached from the top.
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = refs(&schema);
    let mut index = 0;
    while index < queue.len() {
        let name = queue[index].clone();
        index += 1;
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(def) = defs.get(&name) else { continue };
        let _ = write!(out, "\n## `{name}`\n\n");
        if let Some(text) = def["description"].as_str() {
            let _ = write!(out, "{}\n\n", paragraph(text));
        }
        if def.get("properties").is_some() {
            table(&mut out, def);
        } else if let Some(variants) = def.get("oneOf").or_else(|| def.get("anyOf")) {
            variants_list(&mut out, variants);
        } else if let Some(kind) = type_of(def) {
            let _ = writeln!(out, "A {kind}.");
        }
        for next in refs(def) {
            if !seen.contains(&next) {
                queue.push(next);
            }
        }
    }
    out
}

/// The keys of an object schema, one row each.
fn table(out: &mut String, schema: &Value) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| key | type | default | description |\n|---|---|---|---|\n");
    for (key, property) in properties {
        let default = match property.get("default") {
            Some(Value::Null) | None if required.contains(key.as_str()) => "required".to_owned(),
            Some(Value::Null) | None => "—".to_owned(),
            Some(value) => format!("`{}`", value.to_string().replace('|', "\\|")),
        };
        let description = property["description"]
            .as_str()
            .map(cell)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{key}` | {} | {default} | {description} |",
            describe_type(property)
        );
    }
}

/// The variants of an enum-like type: constants, or tagged objects.
fn variants_list(out: &mut String, variants: &Value) {
    for variant in variants.as_array().into_iter().flatten() {
        let description = variant["description"]
            .as_str()
            .map(cell)
            .unwrap_or_default();
        let name = match (
            variant.get("const"),
            variant.get("enum"),
            variant.get("properties"),
        ) {
            (Some(c), _, _) => format!("`{}`", c.as_str().map_or(c.to_string(), str::to_owned)),
            (_, Some(e), _) => e
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
            (_, _, Some(p)) => p
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("`{k}`: {}", describe_type(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            _ => describe_type(variant),
        };
        let _ = writeln!(
            out,
            "- {name}{}",
            if description.is_empty() {
                String::new()
            } else {
                format!(": {description}")
            }
        );
    }
}

/// `string`, `integer or null`, a link to a type, `list of …`, `map of …`.
fn describe_type(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[`{name}`](#{})", name.to_ascii_lowercase());
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let parts: Vec<String> = options
                .iter()
                .map(|o| {
                    if o["type"] == "null" {
                        "null".to_owned()
                    } else {
                        describe_type(o)
                    }
                })
                .collect();
            return parts.join(" or ");
        }
    }
    let base = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => String::new(),
    };
    if base.starts_with("array") {
        let items = describe_type(&schema["items"]);
        return base.replacen("array", &format!("list of {items}"), 1);
    }
    if base.starts_with("object")
        && let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object())
    {
        return base.replacen("object", &format!("map of {}", describe_type(values)), 1);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if base.is_empty() {
        "any".to_owned()
    } else {
        base
    }
}

fn type_of(schema: &Value) -> Option<String> {
    let kind = describe_type(schema);
    (kind != "any").then_some(kind)
}

/// The types `schema` refers to, in order.
fn refs(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_refs(schema, &mut out);
    out
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                out.push(name.to_owned());
            }
            for (key, inner) in map {
                if key != "$defs" {
                    collect_refs(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// A doc comment as one Markdown paragraph.
fn paragraph(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A doc comment fit for a table cell.
fn cell(text: &str) -> String {
    paragraph(text).replace('|', "\\|")
}
