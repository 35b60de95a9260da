//! The env schema: loaded, checked, and used to validate the environment.
//!
//! A team's existing `config/env.schema.json` (JSON Schema 2020-12) works as
//! it is. Our extension keywords start with `x-` so other validators ignore
//! them: `x-secret`, `x-required-in`, `x-separator`. Formats are asserted and
//! an unknown format is a schema error; remote `$ref`s cannot be fetched (no
//! HTTP resolver is built in), so start-up never touches the network.
//!
//! The validator's own `Display` embeds instance values (at the root, the
//! whole environment), so [`message`] builds every message from the error's
//! kind and the schema alone.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::Value;

use super::EnvError;

/// One declared variable.
#[derive(Debug, Clone)]
pub struct Property {
    pub schema: Value,
    pub is_secret: bool,
    /// Contexts in which the variable must be set (and its default does not count).
    pub required_in: Vec<String>,
}

impl Property {
    pub fn default(&self) -> Option<&Value> {
        self.schema.get("default")
    }

    pub fn description(&self) -> Option<&str> {
        self.schema.get("description").and_then(Value::as_str)
    }
}

pub struct Schema {
    pub path: PathBuf,
    pub document: Value,
    validator: Validator,
    /// In the order the schema lists them.
    pub properties: IndexMap<String, Property>,
    /// The root `required` list.
    pub required: Vec<String>,
}

impl Schema {
    /// Reads, checks and compiles the schema at `path`. Every problem is a
    /// schema error naming the file (exit 78).
    pub fn load(path: &Path) -> Result<Schema, EnvError> {
        let bad = |message: String| EnvError::Schema {
            path: path.to_path_buf(),
            problems: vec![message],
        };
        let text = std::fs::read_to_string(path).map_err(|err| bad(format!("cannot read the env schema: {err}")))?;
        let document: Value = serde_json::from_str(&text).map_err(|err| {
            bad(format!(
                "invalid JSON at line {} column {}: {}",
                err.line(),
                err.column(),
                json_reason(&err)
            ))
        })?;
        Schema::from_document(path, document)
    }

    pub fn from_document(path: &Path, document: Value) -> Result<Schema, EnvError> {
        let mut problems = Vec::new();
        let Some(declared) = document.get("properties").and_then(Value::as_object) else {
            return Err(EnvError::Schema {
                path: path.to_path_buf(),
                problems: vec!["the schema must be an object whose `properties` name the variables".to_string()],
            });
        };

        // Against the meta-schema: every problem, each once.
        match jsonschema::meta::validator_for(&document) {
            Ok(meta) => {
                for error in meta.iter_errors(&document) {
                    let line = format!("{}: {}", pointer(error.instance_path().as_str()), message(&error, None));
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
            Err(err) => problems.push(format!("unsupported `$schema`: {}", err.masked())),
        }

        // References we can follow are inside this document; say so in our
        // words (the library's is "No base URI is available").
        outside_references(&document, "", &mut problems);

        let mut properties = IndexMap::new();
        for (name, schema) in declared {
            let at = format!("/properties/{name}");
            // Coercion, defaults and secrecy read the property as it resolves:
            // through `$ref` (`#/$defs/port`, draft-07 `#/definitions/…`) and `allOf`.
            let schema = &resolved(&document, schema, 0);
            let required_in = match schema.get("x-required-in") {
                None => Vec::new(),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    items.iter().filter_map(Value::as_str).map(str::to_string).collect()
                }
                Some(_) => {
                    problems.push(format!("{at}/x-required-in: must be an array of context names"));
                    Vec::new()
                }
            };
            for keyword in ["x-secret", "writeOnly"] {
                if schema.get(keyword).is_some_and(|v| !v.is_boolean()) {
                    problems.push(format!("{at}/{keyword}: must be true or false"));
                }
            }
            if schema.get("x-separator").is_some_and(|v| !v.is_string()) {
                problems.push(format!("{at}/x-separator: must be a string"));
            }
            let is_secret = [schema.get("writeOnly"), schema.get("x-secret")]
                .iter()
                .any(|v| v.and_then(Value::as_bool) == Some(true));
            properties.insert(
                name.clone(),
                Property {
                    schema: schema.clone(),
                    is_secret,
                    required_in,
                },
            );
        }
        let required = document
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();

        if !problems.is_empty() {
            return Err(EnvError::Schema {
                path: path.to_path_buf(),
                problems,
            });
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .with_pattern_options(PatternOptions::regex())
            .build(&document)
            .map_err(|err| EnvError::Schema {
                path: path.to_path_buf(),
                problems: vec![format!(
                    "{}: {}",
                    pointer(err.schema_path().as_str()),
                    message(&err, None)
                )],
            })?;
        let schema = Schema {
            path: path.to_path_buf(),
            document,
            validator,
            properties,
            required,
        };
        schema.check_defaults()?;
        Ok(schema)
    }

    /// Every `default` must satisfy its own property (Ajv and envalid skip this).
    fn check_defaults(&self) -> Result<(), EnvError> {
        let defaults: serde_json::Map<String, Value> = self
            .properties
            .iter()
            .filter_map(|(name, property)| Some((name.clone(), property.default()?.clone())))
            .collect();
        let instance = Value::Object(defaults);
        let mut problems = Vec::new();
        for error in self.validator.iter_errors(&instance) {
            let mut segments = error.instance_path().iter();
            if let Some(name) = segments.next() {
                let line = format!("/properties/{name}/default: {}", message(&error, None));
                if !problems.contains(&line) {
                    problems.push(line);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EnvError::Schema {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// The allowed contexts: the context variable's `enum`, when it has one.
    pub fn contexts(&self, context_var: &str) -> Option<Vec<String>> {
        let options = self.properties.get(context_var)?.schema.get("enum")?.as_array()?;
        Some(options.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    /// `(variable, message)` for every way `instance` breaks the schema.
    /// `context` is `(context_var, context)` when a context variable is set,
    /// so that `then: {required}` under an `if` on it can say so.
    pub fn violations(&self, instance: &Value, context: Option<(&str, &str)>) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for error in self.validator.iter_errors(instance) {
            let mut segments = error.instance_path().iter();
            let (variable, prefix) = match segments.next() {
                Some(name) => {
                    let item = segments.next().map(|index| match index {
                        jsonschema::paths::LocationSegment::Index(i) => format!("item {}: ", i + 1),
                        jsonschema::paths::LocationSegment::Property(p) => format!("{p}: "),
                    });
                    (name.to_string(), item.unwrap_or_default())
                }
                None => match error.kind() {
                    ValidationErrorKind::Required { property } => {
                        (property.as_str().unwrap_or("?").to_string(), String::new())
                    }
                    _ => ("environment".to_string(), String::new()),
                },
            };
            let text = match error.kind() {
                ValidationErrorKind::Required { .. } => self.required_message(error.schema_path().as_str(), context),
                _ => message(&error, Some(error.schema_path().as_str())),
            };
            let entry = (variable, format!("{prefix}{text}"));
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
        found
    }

    /// "required", or "required in context …" when the rule is a `then`
    /// under an `if` on the context variable.
    fn required_message(&self, schema_path: &str, context: Option<(&str, &str)>) -> String {
        if let (Some((var, context)), Some(at)) = (context, schema_path.rfind("/then/")) {
            let condition = self.document.pointer(&format!("{}/if", &schema_path[..at]));
            if condition.is_some_and(|c| c.pointer(&format!("/properties/{}", escape_pointer(var))).is_some()) {
                return format!("required in context \"{context}\"");
            }
        }
        "required".to_string()
    }
}

/// `schema` with the local `$ref` it names and its `allOf` parts merged in,
/// its own keywords winning; `items` resolved the same way.
fn resolved(document: &Value, schema: &Value, depth: u8) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    if depth > 16 {
        return schema.clone();
    }
    let mut merged = serde_json::Map::new();
    let mut absorb = |part: Value| {
        if let Value::Object(part) = part {
            for (key, value) in part {
                merged.insert(key, value);
            }
        }
    };
    if let Some(target) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
        .and_then(|pointer| document.pointer(pointer))
    {
        absorb(resolved(document, target, depth + 1));
    }
    if let Some(Value::Array(parts)) = object.get("allOf") {
        for part in parts {
            absorb(resolved(document, part, depth + 1));
        }
    }
    let mut merged = merged;
    for (key, value) in object {
        if key != "$ref" && key != "allOf" {
            merged.insert(key.clone(), value.clone());
        }
    }
    if let Some(items) = merged.get("items").cloned() {
        merged.insert("items".to_string(), resolved(document, &items, depth + 1));
    }
    Value::Object(merged)
}

/// Every `$ref` that points outside this document (another file, a URL).
fn outside_references(value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let here = format!("{at}/{}", escape_pointer(key));
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) if !reference.starts_with('#') => problems.push(format!(
                        "{here}: {reference:?} refers outside this schema; only references inside it (\"#/$defs/…\") are supported"
                    )),
                    _ => outside_references(child, &here, problems),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                outside_references(item, &format!("{at}/{index}"), problems);
            }
        }
        _ => {}
    }
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// serde_json's reason without its position suffix (we print that ourselves).
fn json_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A message built from the kind and the schema only: never from the value.
pub fn message(error: &ValidationError<'_>, schema_path: Option<&str>) -> String {
    let at = || {
        schema_path
            .map(|p| format!(" (schema {})", pointer(p)))
            .unwrap_or_default()
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            format!("missing `{}`", property.as_str().unwrap_or("?"))
        }
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} characters"),
        ValidationErrorKind::MaxLength { limit } => format!("must be at most {limit} characters"),
        ValidationErrorKind::Minimum { limit } => format!("must be >= {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be <= {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be > {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be < {limit}"),
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of}")
        }
        ValidationErrorKind::Pattern { pattern } => format!("must match {pattern}"),
        ValidationErrorKind::Format { format } => format!("must be a valid {format}"),
        ValidationErrorKind::Enum { options } => format!("must be one of: {}", list(options)),
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Type { kind } => format!("expected {}", type_name(kind)),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} item(s)"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} item(s)"),
        ValidationErrorKind::UniqueItems => "items must be unique".to_string(),
        ValidationErrorKind::Contains => format!("must contain a matching item{}", at()),
        ValidationErrorKind::Not { .. } => format!("must not match a forbidden schema{}", at()),
        ValidationErrorKind::FalseSchema => "is not allowed".to_string(),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let mut options: Vec<String> = context
                .iter()
                .filter_map(|branch| branch.first().map(|e| message(e, None)))
                .collect();
            options.dedup();
            format!("must satisfy one of: {}", options.join("; or "))
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            format!("must match exactly one alternative{}", at())
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            format!("unexpected keys: {}", unexpected.join(", "))
        }
        // Raised only while compiling the schema (unknown format, bad regex): about the schema, not a value.
        ValidationErrorKind::Custom { message, .. } => message.clone(),
        ValidationErrorKind::Referencing(err) => {
            format!("cannot resolve a `$ref` (only local references work): {err}")
        }
        ValidationErrorKind::BacktrackLimitExceeded { .. } | ValidationErrorKind::RegexEngineFailure { .. } => {
            format!("cannot evaluate the pattern{}", at())
        }
        other => format!("does not satisfy `{}`{}", other.keyword(), at()),
    }
}

fn list(options: &Value) -> String {
    match options {
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(single) => format!("{single}"),
        jsonschema::error::TypeKind::Multiple(set) => format!("{set:?}"),
    }
}
