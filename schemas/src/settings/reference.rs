//! The configuration reference of a service, rendered from its raw config type's JSON Schema
//! (`schemars`): every key with its environment variable, type, default and the field's own doc
//! comment. Each service prints its part with `--config-doc`, docs/configuration.md holds the
//! three, and a test in each service keeps that copy equal to what this renders — so the
//! reference is the types, not a second description of them that drifts.
//!
//! Nested sections become `[section]` tables, lists of tables `[[section.list]]`. The order is
//! alphabetical: serde_json's maps are sorted (the workspace keeps `preserve_order` off).

use schemars::Schema;
use serde_json::{Map, Value};

/// The rendered reference and the keys whose field has no doc comment (a test requires none:
/// an operator must never need the code to know what a key does).
#[derive(Debug)]
pub struct Reference {
    pub markdown: String,
    pub undocumented: Vec<String>,
}

/// Renders `schema` (a service's raw configuration) as Markdown under a `## {title}` heading.
/// `env_prefix` is what precedes a key's upper-cased path in its environment variable
/// (`UPTAKE_` for `UPTAKE_KAFKA__BROKERS`, `UPTAKE_CONSOLE__` for the console).
pub fn render(title: &str, intro: &str, schema: &Schema, env_prefix: &str) -> Reference {
    let root = schema.as_value();
    let empty = Map::new();
    let defs = root.get("$defs").and_then(Value::as_object).unwrap_or(&empty);
    let mut walker = Walker { defs, env_prefix, sections: Vec::new(), undocumented: Vec::new() };
    walker.sections.push(Section { heading: "top level".into(), about: String::new(), rows: Vec::new() });
    walker.walk(root, None, &[], 0, true);

    let mut md = format!("## {title}\n\n{}\n", intro.trim());
    for section in walker.sections.iter().filter(|s| !s.rows.is_empty()) {
        md.push_str(&format!("\n### {}\n\n", section.heading));
        if !section.about.is_empty() {
            md.push_str(&format!("{}\n\n", section.about));
        }
        md.push_str("| key | type | default | what it does |\n|---|---|---|---|\n");
        for row in &section.rows {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.key,
                cell(&row.ty),
                cell(&row.default),
                cell(&row.about)
            ));
        }
    }
    Reference { markdown: md, undocumented: walker.undocumented }
}

impl Reference {
    /// Panics unless every key is documented and docs/configuration.md (found from the calling
    /// crate's `manifest_dir`) holds this reference as it is; `command` prints it.
    pub fn assert_in_docs(&self, manifest_dir: &str, command: &str) {
        assert!(self.undocumented.is_empty(), "keys without a doc comment: {:?}", self.undocumented);
        let path = std::path::Path::new(manifest_dir).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(doc.contains(&self.markdown), "docs/configuration.md is stale: paste `{command}` into it");
    }
}

struct Section {
    heading: String,
    about: String,
    rows: Vec<Row>,
}

struct Row {
    key: String,
    ty: String,
    default: String,
    about: String,
}

struct Walker<'a> {
    defs: &'a Map<String, Value>,
    env_prefix: &'a str,
    sections: Vec<Section>,
    undocumented: Vec<String>,
}

impl<'a> Walker<'a> {
    /// Adds the properties of `object` (a resolved struct schema) at `path` to section `at`;
    /// `env` is false inside lists of tables, which no environment variable can reach.
    /// `defaults` is the section's default as its parent gives it, for sections whose own type
    /// has none (health weights differ per lifecycle stage).
    fn walk(&mut self, object: &'a Value, defaults: Option<&'a Value>, path: &[String], at: usize, env: bool) {
        let Some(props) = object.get("properties").and_then(Value::as_object) else { return };
        for (name, prop) in props {
            let mut key = path.to_vec();
            key.push(name.clone());
            let dotted = key.join(".");
            let resolved = self.resolve(prop);
            let about = self.about(prop, resolved);
            if is_struct(resolved) {
                let heading = format!("`[{dotted}]`");
                self.sections.push(Section { heading, about: about.unwrap_or_default(), rows: Vec::new() });
                let here = self.sections.len() - 1;
                let inner = prop.get("default").or_else(|| defaults.and_then(|d| d.get(name)));
                self.walk(resolved, inner, &key, here, env);
                continue;
            }
            let items = resolved.get("items").map(|i| self.resolve(i)).filter(|i| is_struct(i));
            if about.is_none() {
                self.undocumented.push(dotted.clone());
            }
            let env_var =
                (env && is_scalar(resolved)).then(|| format!("{}{}", self.env_prefix, key.join("__").to_uppercase()));
            let key_cell = match env_var {
                Some(var) => format!("`{dotted}`<br>`{var}`"),
                None => format!("`{dotted}`"),
            };
            let ty = match items {
                Some(_) => format!("list of `[[{dotted}]]` tables"),
                None => self.type_of(prop),
            };
            let default = prop.get("default").or_else(|| defaults.and_then(|d| d.get(name)));
            let default = default.map(default_of).unwrap_or_else(|| "—".into());
            self.sections[at].rows.push(Row { key: key_cell, ty, default, about: about.unwrap_or_default() });
            if let Some(item) = items {
                let about = self.about(item, item).unwrap_or_default();
                self.sections.push(Section { heading: format!("`[[{dotted}]]`"), about, rows: Vec::new() });
                let here = self.sections.len() - 1;
                // An entry's keys read `list[].key`: written as `key` inside `[[list]]`.
                let mut entry = path.to_vec();
                entry.push(format!("{name}[]"));
                self.walk(item, None, &entry, here, false);
            }
        }
    }

    /// `schema` with a `$ref` (alone or as the non-null branch of an `Option`) followed.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
            return self.defs.get(name).map(|d| self.resolve(d)).unwrap_or(schema);
        }
        match non_null_branch(schema) {
            Some(inner) => self.resolve(inner),
            None => schema,
        }
    }

    /// The field's doc comment, else its type's.
    fn about(&self, prop: &Value, resolved: &Value) -> Option<String> {
        let text = prop.get("description").or_else(|| resolved.get("description"))?.as_str()?;
        Some(plain(text))
    }

    fn type_of(&self, schema: &'a Value) -> String {
        let optional = is_optional(schema);
        let resolved = self.resolve(schema);
        let base = if let Some(values) = enum_values(resolved) {
            format!("one of {}", values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "))
        } else {
            match primary_type(resolved) {
                Some("array") => match resolved.get("items") {
                    Some(items) => format!("list of {}", self.type_of(items)),
                    None => "list".into(),
                },
                Some("object") => match resolved.get("additionalProperties").filter(|v| v.is_object()) {
                    Some(values) => format!("table of {}", self.type_of(values)),
                    None => "table".into(),
                },
                Some("integer") if resolved.get("minimum").and_then(Value::as_f64) == Some(0.0) => "integer ≥ 0".into(),
                Some(t) => t.into(),
                None => "any".into(),
            }
        };
        if optional {
            format!("{base}, optional")
        } else {
            base
        }
    }
}

/// A struct: a table of named keys (not a map of free keys).
fn is_struct(schema: &Value) -> bool {
    schema.get("properties").is_some_and(Value::is_object)
}

/// Settable from one environment variable: not a list or a table (`config` splits neither).
fn is_scalar(resolved: &Value) -> bool {
    !matches!(primary_type(resolved), Some("array") | Some("object"))
}

/// The schema's type other than `null`.
fn primary_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn is_optional(schema: &Value) -> bool {
    let nullable_type = schema.get("type").and_then(Value::as_array).is_some_and(|ts| ts.iter().any(|t| t == "null"));
    nullable_type || non_null_branch(schema).is_some()
}

/// `Option<T>` of a referenced `T` is `anyOf: [T, {type: null}]`: the `T`.
fn non_null_branch(schema: &Value) -> Option<&Value> {
    let branches = schema.get("anyOf")?.as_array()?;
    if branches.len() != 2 || !branches.iter().any(|b| b.get("type") == Some(&Value::from("null"))) {
        return None;
    }
    branches.iter().find(|b| b.get("type") != Some(&Value::from("null")))
}

/// The values of a string enum (`enum: [...]`, or `oneOf` of consts and enums, as schemars
/// writes an enum whose variants have doc comments).
fn enum_values(schema: &Value) -> Option<Vec<String>> {
    let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    if let Some(values) = schema.get("enum").and_then(strings) {
        return Some(values);
    }
    let branches = schema.get("oneOf")?.as_array()?;
    let mut values = Vec::new();
    for b in branches {
        match (b.get("const").and_then(Value::as_str), b.get("enum").and_then(strings)) {
            (Some(c), _) => values.push(c.to_owned()),
            (None, Some(more)) => values.extend(more),
            (None, None) => return None,
        }
    }
    Some(values)
}

/// A default as an operator writes it in TOML.
fn default_of(value: &Value) -> String {
    fn toml(v: &Value) -> String {
        match v {
            Value::Null => "none".into(),
            Value::Array(items) => format!("[{}]", items.iter().map(toml).collect::<Vec<_>>().join(", ")),
            Value::Object(m) if m.is_empty() => "{}".into(),
            other => other.to_string(),
        }
    }
    match value {
        Value::Null => "none".into(),
        v => format!("`{}`", toml(v)),
    }
}

/// A doc comment as one Markdown paragraph: lines joined, rustdoc links (`[`x`]`) as code.
fn plain(doc: &str) -> String {
    let joined = doc.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    joined.replace("[`", "`").replace("`]", "`")
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// A service's configuration.
    #[derive(Deserialize, JsonSchema)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Raw {
        /// Where it listens.
        listen: String,
        /// Where it writes.
        kafka: Kafka,
        hooks: Vec<Hook>,
        /// Output format.
        format: Format,
        /// Extra headers.
        headers: std::collections::BTreeMap<String, String>,
        /// A file, if any.
        file: Option<std::path::PathBuf>,
    }

    impl Default for Raw {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:8080".into(),
                kafka: Kafka::default(),
                hooks: Vec::new(),
                format: Format::Json,
                headers: Default::default(),
                file: None,
            }
        }
    }

    /// The broker side.
    #[derive(Deserialize, JsonSchema)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Kafka {
        /// Bootstrap brokers | comma-separated, see [`Raw`].
        brokers: String,
        /// Names of topics.
        topics: Vec<String>,
    }

    impl Default for Kafka {
        fn default() -> Self {
            Self { brokers: "b:9092".into(), topics: vec!["a".into(), "b".into()] }
        }
    }

    /// One hook.
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[allow(dead_code)]
    struct Hook {
        /// Its address.
        url: String,
    }

    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Json,
        /// Plain text.
        Text,
    }

    #[test]
    fn every_key_gets_its_variable_type_default_and_doc() {
        let r = render("svc", "Intro.", &schemars::schema_for!(Raw), "UPTAKE_");
        let md = &r.markdown;
        assert!(md.starts_with("## svc\n\nIntro.\n"), "{md}");
        assert!(
            md.contains("| `listen`<br>`UPTAKE_LISTEN` | string | `\"127.0.0.1:8080\"` | Where it listens. |"),
            "{md}"
        );
        assert!(
            md.contains("| `format`<br>`UPTAKE_FORMAT` | one of `json`, `text` | `\"json\"` | Output format. |"),
            "{md}"
        );
        assert!(md.contains("| `headers` | table of string | `{}` | Extra headers. |"), "{md}");
        assert!(md.contains("| `file`<br>`UPTAKE_FILE` | string, optional | none | A file, if any. |"), "{md}");
        // A section with its own doc, its keys' variables joined by `__`, a `|` escaped.
        assert!(md.contains("### `[kafka]`\n\nWhere it writes.\n"), "{md}");
        let brokers = "| `kafka.brokers`<br>`UPTAKE_KAFKA__BROKERS` | string | `\"b:9092\"` | Bootstrap brokers \\| comma-separated, see `Raw`. |";
        assert!(md.contains(brokers), "{md}");
        assert!(md.contains("| `kafka.topics` | list of string | `[\"a\", \"b\"]` | Names of topics. |"), "{md}");
        // A list of tables: the list, then its entries' keys, with no variable.
        assert!(md.contains("| `hooks` | list of `[[hooks]]` tables | `[]` |  |"), "{md}");
        assert!(md.contains("### `[[hooks]]`\n\nOne hook.\n"), "{md}");
        assert!(md.contains("| `hooks[].url` | string | — | Its address. |"), "{md}");
        assert_eq!(r.undocumented, ["hooks"]);
    }
}
