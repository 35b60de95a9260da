//! The environment the children get (SPEC §3, step 2 of §1).
//!
//! The real environment, plus `[env].files` (a variable already set in the
//! real environment wins; a later file wins over an earlier one), validated
//! against `[env].schema` with the schema's defaults applied. Only declared
//! variables are looked at; everything else passes through byte for byte.
//! Any problem, and nothing starts: every problem is reported at once (78).
//!
//! `dotenv` reads files, `coerce` turns strings into typed values, `schema`
//! loads and applies the JSON Schema, `report` renders the result. No value
//! from the environment ever reaches a message.

pub mod coerce;
pub mod dotenv;
pub mod example;
pub mod report;
pub mod schema;

use crate::environment::Environment;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::EnvSection;
use report::{ContextSource, Problem, Report};
use schema::Schema;

/// The context when nothing names one: production, so a forgotten
/// `APP_ENV` runs every production check instead of skipping them.
pub const FALLBACK_CONTEXT: &str = "production";

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Bad lines in dotenv files: `file:line: reason`, never the text.
    #[error("{}", problems.iter().map(|(file, line, reason)| format!("{}:{line}: {reason}", file.display())).collect::<Vec<_>>().join("\nerror: "))]
    Dotenv { problems: Vec<(PathBuf, usize, String)> },

    #[error("{}: cannot read: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}", problems.iter().map(|p| format!("{}: {p}", path.display())).collect::<Vec<_>>().join("\nerror: "))]
    Schema { path: PathBuf, problems: Vec<String> },

    /// `--context` names a context the schema does not know (exit 64).
    #[error("--context {given:?} is not a known context (expected one of: {})", valid.join(", "))]
    UnknownContext { given: String, valid: Vec<String> },

    /// `SUPERVISOR_CONTEXT` names a context the schema does not know (exit 78).
    #[error("SUPERVISOR_CONTEXT: not a known context (expected one of: {})", valid.join(", "))]
    UnknownSetting { valid: Vec<String> },

    /// The environment breaks the schema; the report says how.
    #[error("{}", report.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Invalid { report: Report },
}

/// What the children get, and the report it was checked with.
#[derive(Debug)]
pub struct Validated {
    pub vars: Environment,
    /// `None` when no schema is configured.
    pub report: Option<Report>,
}

/// Where the context may come from, strongest first.
pub struct ContextInputs<'a> {
    pub flag: Option<&'a str>,
    pub setting: Option<&'a str>,
}

/// Builds and validates the environment. With `keep_invalid`, an invalid
/// environment is returned with its report instead of as an error (for
/// `check-env`, which prints either way).
pub fn build(section: &EnvSection, context: &ContextInputs<'_>, keep_invalid: bool) -> Result<Validated, EnvError> {
    let mut vars = Environment::inherited();
    apply_files(&mut vars, &section.files)?;
    let Some(schema_path) = &section.schema else {
        return Ok(Validated { vars, report: None });
    };
    let schema = Schema::load(&shown(schema_path))?;
    let report = validate(&schema, &mut vars, section.context_var.as_deref(), context)?;
    if report.is_ok() || keep_invalid {
        Ok(Validated {
            vars,
            report: Some(report),
        })
    } else {
        Err(EnvError::Invalid { report })
    }
}

/// Adds the variables of each dotenv file that the real environment does not set.
fn apply_files(vars: &mut Environment, files: &[PathBuf]) -> Result<(), EnvError> {
    // What the real environment sets, before any file adds to it.
    let real = vars.clone();
    let mut problems = Vec::new();
    for path in files {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(EnvError::ReadFile {
                    path: shown(path),
                    source,
                })
            }
        };
        match dotenv::parse(&text) {
            Ok(assignments) => {
                for assignment in assignments {
                    if !real.contains(OsStr::new(&assignment.key)) {
                        vars.set(&assignment.key, assignment.value);
                    }
                }
            }
            Err(bad) => problems.extend(bad.into_iter().map(|p| (shown(path), p.line, p.reason))),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EnvError::Dotenv { problems })
    }
}

/// A path as the user would write it (`.env`, not `./.env`).
fn shown(path: &Path) -> PathBuf {
    path.strip_prefix(".").unwrap_or(path).to_path_buf()
}

/// Picks the context (SPEC §3): `--context` > `SUPERVISOR_CONTEXT` > the
/// context variable > its schema default > production.
fn resolve_context(
    schema: &Schema,
    vars: &Environment,
    context_var: Option<&str>,
    inputs: &ContextInputs<'_>,
) -> Result<(String, ContextSource), EnvError> {
    let valid = context_var.and_then(|var| schema.contexts(var));
    let known = |name: &str| valid.as_ref().is_none_or(|valid| valid.iter().any(|v| v == name));
    if let Some(flag) = inputs.flag {
        if !known(flag) {
            return Err(EnvError::UnknownContext {
                given: flag.to_string(),
                valid: valid.unwrap_or_default(),
            });
        }
        return Ok((flag.to_string(), ContextSource::Flag));
    }
    if let Some(setting) = inputs.setting {
        if !known(setting) {
            return Err(EnvError::UnknownSetting {
                valid: valid.unwrap_or_default(),
            });
        }
        return Ok((setting.to_string(), ContextSource::Setting));
    }
    let schema_default = context_var
        .and_then(|var| schema.properties.get(var))
        .and_then(|p| p.default())
        .and_then(Value::as_str);
    // A value outside the enum is reported by the schema; the rest is
    // checked in the default context, failing safe.
    let variable = context_var.and_then(|var| Some((var, vars.text(var).filter(|value| known(value))?)));
    Ok(pick_context(inputs, variable, schema_default))
}

/// SPEC §3, the one place of this rule: `--context` > `SUPERVISOR_CONTEXT` >
/// the context variable (`(name, value)`) > its schema default > `production`.
pub fn pick_context(
    inputs: &ContextInputs<'_>,
    variable: Option<(&str, &str)>,
    schema_default: Option<&str>,
) -> (String, ContextSource) {
    if let Some(flag) = inputs.flag {
        return (flag.to_string(), ContextSource::Flag);
    }
    if let Some(setting) = inputs.setting {
        return (setting.to_string(), ContextSource::Setting);
    }
    if let Some((name, value)) = variable {
        return (value.to_string(), ContextSource::Variable(name.to_string()));
    }
    match schema_default {
        Some(default) => (default.to_string(), ContextSource::SchemaDefault),
        None => (FALLBACK_CONTEXT.to_string(), ContextSource::Fallback),
    }
}

/// Checks the declared variables and applies defaults into `vars`.
pub fn validate(
    schema: &Schema,
    vars: &mut Environment,
    context_var: Option<&str>,
    inputs: &ContextInputs<'_>,
) -> Result<Report, EnvError> {
    let (context, source) = resolve_context(schema, vars, context_var, inputs)?;
    let mut problems: Vec<Problem> = Vec::new();
    let mut instance = serde_json::Map::new();
    let mut unreadable: Vec<&str> = Vec::new();
    let mut defaults: Vec<(String, String)> = Vec::new();
    let required_here = |name: &str, property: &schema::Property| {
        property.required_in.contains(&context) || (schema.required.iter().any(|r| r == name))
    };

    for (name, property) in &schema.properties {
        let problem = |message: String| Problem {
            variable: name.clone(),
            message,
            secret: property.is_secret,
        };
        // The context variable is validated as the context in force: the flag
        // or setting overrides it; an invalid value of its own is still checked.
        let raw = if Some(name.as_str()) == context_var {
            match source {
                ContextSource::Flag | ContextSource::Setting => Some(OsString::from(&context)),
                ContextSource::Variable(_) => vars.get(name).map(ToOwned::to_owned),
                ContextSource::SchemaDefault | ContextSource::Fallback => vars
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .map(ToOwned::to_owned)
                    .or_else(|| Some(OsString::from(&context))),
            }
        } else {
            vars.get(name).map(ToOwned::to_owned)
        };
        let context_required = property.required_in.contains(&context);
        match raw.as_ref().filter(|v| !v.is_empty()) {
            Some(value) => match value.to_str() {
                None => {
                    problems.push(problem("value is not valid UTF-8".to_string()));
                    unreadable.push(name);
                }
                Some(text) => match coerce::coerce(text, &property.schema) {
                    Ok(value) => {
                        instance.insert(name.clone(), value);
                    }
                    Err(message) => {
                        problems.push(problem(message));
                        unreadable.push(name);
                    }
                },
            },
            None => {
                let empty = raw.is_some();
                if context_required {
                    let mut message = format!("required in context \"{context}\"");
                    if empty {
                        message.push_str(" (set but empty)");
                    }
                    problems.push(problem(message));
                    unreadable.push(name);
                } else if let Some(default) = property.default() {
                    instance.insert(name.clone(), default.clone());
                    defaults.push((name.clone(), coerce::default_as_string(default, &property.schema)));
                } else if empty && required_here(name, property) {
                    problems.push(problem("required (set but empty)".to_string()));
                    unreadable.push(name);
                }
            }
        }
    }

    let ctx = context_var.map(|var| (var, context.as_str()));
    for (variable, message) in schema.violations(&Value::Object(instance), ctx) {
        if unreadable.contains(&variable.as_str()) {
            continue;
        }
        let secret = schema.properties.get(&variable).is_some_and(|p| p.is_secret);
        problems.push(Problem {
            variable,
            message,
            secret,
        });
    }
    problems.sort();
    problems.dedup();

    for (name, value) in defaults {
        vars.set(&name, value);
    }
    if let Some(var) = context_var {
        if vars.get(var).and_then(OsStr::to_str) != Some(context.as_str())
            && !matches!(source, ContextSource::Variable(_))
        {
            vars.set(var, context.clone());
        }
    }
    Ok(Report {
        context,
        context_source: source,
        checked: schema.properties.len(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(document: Value) -> Schema {
        Schema::from_document(Path::new("s.json"), document).unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    fn check(schema: &Schema, env: &[(&str, &str)], flag: Option<&str>) -> (Report, Environment) {
        let mut env = vars(env);
        let inputs = ContextInputs { flag, setting: None };
        let report = validate(schema, &mut env, Some("APP_ENV"), &inputs).unwrap();
        (report, env)
    }

    fn lines(report: &Report) -> Vec<String> {
        report.problems.iter().map(ToString::to_string).collect()
    }

    fn contexts() -> Value {
        json!({
            "properties": {
                "APP_ENV": {"enum": ["development", "production"], "default": "development"},
                "KEY": {"type": "string", "x-required-in": ["production"], "default": "dev-key", "x-secret": true},
                "PORT": {"type": "integer", "default": 3000}
            }
        })
    }

    #[test]
    fn the_context_comes_from_flag_then_variable_then_schema_default() {
        let schema = schema(contexts());
        let (report, _) = check(&schema, &[("APP_ENV", "production")], Some("development"));
        assert_eq!(
            (report.context.as_str(), &report.context_source),
            ("development", &ContextSource::Flag)
        );
        let (report, _) = check(&schema, &[("APP_ENV", "production")], None);
        assert_eq!(report.context_source, ContextSource::Variable("APP_ENV".into()));
        assert_eq!(lines(&report), ["KEY: required in context \"production\" [secret]"]);
        let (report, env) = check(&schema, &[], None);
        assert_eq!(
            (report.context.as_str(), &report.context_source),
            ("development", &ContextSource::SchemaDefault)
        );
        assert!(report.is_ok());
        // Defaults and the context in force reach the children.
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect();
        for pair in [("KEY", "dev-key"), ("PORT", "3000"), ("APP_ENV", "development")] {
            assert!(
                env.contains(&(pair.0.to_string(), pair.1.to_string())),
                "{pair:?} in {env:?}"
            );
        }
    }

    #[test]
    fn without_a_default_the_context_fails_safe_to_production() {
        let mut document = contexts();
        document["properties"]["APP_ENV"] = json!({"enum": ["development", "production"]});
        let (report, _) = check(&schema(document), &[], None);
        assert_eq!(
            (report.context.as_str(), &report.context_source),
            ("production", &ContextSource::Fallback)
        );
        assert_eq!(lines(&report), ["KEY: required in context \"production\" [secret]"]);
    }

    #[test]
    fn an_unknown_flag_is_a_usage_error() {
        let schema = schema(contexts());
        let mut env = Environment::default();
        let inputs = ContextInputs {
            flag: Some("prod"),
            setting: None,
        };
        let err = validate(&schema, &mut env, Some("APP_ENV"), &inputs).unwrap_err();
        assert!(matches!(err, EnvError::UnknownContext { ref valid, .. } if valid.len() == 2));
    }

    #[test]
    fn a_conversion_error_is_reported_once_and_empty_is_unset() {
        let schema = schema(
            json!({"properties": {"PORT": {"type": "integer", "minimum": 1}, "URL": {"type": "string"}}, "required": ["PORT", "URL"]}),
        );
        let (report, _) = check(&schema, &[("PORT", "abc"), ("URL", "")], None);
        assert_eq!(
            lines(&report),
            ["PORT: expected a base-10 integer", "URL: required (set but empty)"]
        );
    }

    #[test]
    fn hand_written_if_then_on_the_context_says_so() {
        let schema = schema(json!({
            "properties": {"APP_ENV": {"enum": ["dev", "prod"]}, "DSN": {"type": "string"}},
            "if": {"properties": {"APP_ENV": {"const": "prod"}}},
            "then": {"required": ["DSN"]}
        }));
        let (report, _) = check(&schema, &[("APP_ENV", "prod")], None);
        assert_eq!(lines(&report), ["DSN: required in context \"prod\""]);
        let (report, _) = check(&schema, &[("APP_ENV", "dev")], None);
        assert!(report.is_ok());
    }
}
