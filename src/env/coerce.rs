//! Strings → typed JSON values, by the property's declared `type` (SPEC §3).
//!
//! Grammars are strict on purpose: `+80`, `0x50` and `1e3` are not integers,
//! `"maybe"` is not a boolean, and nothing is guessed from truthiness (the
//! zod `"false"` → true class of bug). Messages name the rule, never the
//! value. Children still receive the original string; these values exist
//! only to be validated.

use serde_json::{Number, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    String,
}

/// The declared types, in the order we try them (most specific first).
fn kinds(schema: &Value) -> Vec<Kind> {
    let names: Vec<&str> = match schema.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut kinds: Vec<Kind> = [
        ("integer", Kind::Integer),
        ("number", Kind::Number),
        ("boolean", Kind::Boolean),
        ("array", Kind::Array),
        ("object", Kind::Object),
        ("string", Kind::String),
    ]
    .iter()
    .filter(|(name, _)| names.contains(name))
    .map(|(_, kind)| *kind)
    .collect();
    if kinds.is_empty() {
        kinds.push(Kind::String);
    }
    kinds
}

/// The separator of an array variable: `x-separator`, or env-schema's `separator`, or `,`.
pub fn separator(schema: &Value) -> &str {
    schema
        .get("x-separator")
        .or_else(|| schema.get("separator"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(",")
}

/// Converts `text` as the property `schema` declares.
pub fn coerce(text: &str, schema: &Value) -> Result<Value, String> {
    let kinds = kinds(schema);
    let mut first_error = None;
    for kind in &kinds {
        match coerce_as(*kind, text, schema) {
            Ok(value) => return Ok(value),
            Err(message) => {
                first_error.get_or_insert(message);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "cannot be read".to_string()))
}

fn coerce_as(kind: Kind, text: &str, schema: &Value) -> Result<Value, String> {
    match kind {
        Kind::String => Ok(Value::String(text.to_string())),
        Kind::Integer => integer(text),
        Kind::Number => number(text),
        Kind::Boolean => boolean(text),
        Kind::Object => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err("expected a JSON object".to_string()),
        },
        Kind::Array => {
            let items_schema = schema.get("items").cloned().unwrap_or(Value::Bool(true));
            let mut items = Vec::new();
            for (index, item) in text.split(separator(schema)).enumerate() {
                let item = item.trim();
                if item.is_empty() {
                    return Err(format!("item {} is empty", index + 1));
                }
                let value = coerce(item, &items_schema).map_err(|message| format!("item {}: {message}", index + 1))?;
                items.push(value);
            }
            Ok(Value::Array(items))
        }
    }
}

/// `-?[0-9]+`, within i64.
fn integer(text: &str) -> Result<Value, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a base-10 integer".to_string());
    }
    text.parse::<i64>()
        .map(|n| Value::Number(n.into()))
        .map_err(|_| "integer out of range".to_string())
}

/// `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`, finite.
fn number(text: &str) -> Result<Value, String> {
    let bad = || "expected a number".to_string();
    let rest = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(bad());
    }
    if let Some(exponent) = exponent {
        if !all_digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)) {
            return Err(bad());
        }
    }
    if exponent.is_none() && fraction.is_none() {
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
    }
    let value: f64 = text.parse().map_err(|_| bad())?;
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| "number out of range".to_string())
}

fn boolean(text: &str) -> Result<Value, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
        "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
        _ => Err("expected a boolean (true/false, 1/0, yes/no, on/off)".to_string()),
    }
}

/// A schema `default` as the string a child receives.
pub fn default_as_string(value: &Value, schema: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| default_as_string(item, &Value::Null))
            .collect::<Vec<_>>()
            .join(separator(schema)),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_strict() {
        let schema = json!({"type": "integer"});
        for good in ["0", "80", "-3", "080", "9223372036854775807"] {
            assert!(coerce(good, &schema).is_ok(), "{good}");
        }
        for bad in ["+80", " 80", "0x50", "1e3", "3.5", "", "-", "abc", "８０"] {
            assert_eq!(
                coerce(bad, &schema),
                Err("expected a base-10 integer".into()),
                "{bad:?}"
            );
        }
        assert_eq!(
            coerce("99999999999999999999", &schema),
            Err("integer out of range".into())
        );
    }

    #[test]
    fn numbers_booleans_and_objects() {
        let number = json!({"type": "number"});
        assert_eq!(coerce("1.5", &number), Ok(json!(1.5)));
        assert_eq!(coerce("-2e3", &number), Ok(json!(-2000.0)));
        assert_eq!(coerce("7", &number), Ok(json!(7)));
        for bad in ["NaN", "inf", ".5", "1.", "1e", "0x1"] {
            assert!(coerce(bad, &number).is_err(), "{bad}");
        }
        let boolean = json!({"type": "boolean"});
        for (text, want) in [
            ("TRUE", true),
            ("1", true),
            ("Yes", true),
            ("on", true),
            ("False", false),
            ("0", false),
            ("NO", false),
            ("off", false),
        ] {
            assert_eq!(coerce(text, &boolean), Ok(Value::Bool(want)), "{text}");
        }
        assert!(coerce("maybe", &boolean).unwrap_err().starts_with("expected a boolean"));
        let object = json!({"type": "object"});
        assert_eq!(coerce("{\"a\":1}", &object), Ok(json!({"a": 1})));
        assert_eq!(coerce("[1]", &object), Err("expected a JSON object".into()));
    }

    #[test]
    fn arrays_split_trim_and_convert_items() {
        let schema = json!({"type": "array", "items": {"type": "integer"}});
        assert_eq!(coerce("1, 2 ,3", &schema), Ok(json!([1, 2, 3])));
        assert_eq!(coerce("1,,3", &schema), Err("item 2 is empty".into()));
        assert_eq!(coerce("1,x", &schema), Err("item 2: expected a base-10 integer".into()));
        let piped = json!({"type": "array", "x-separator": "|"});
        assert_eq!(coerce("a|b", &piped), Ok(json!(["a", "b"])));
    }

    #[test]
    fn union_types_try_the_most_specific_first() {
        let schema = json!({"type": ["integer", "string"]});
        assert_eq!(coerce("5", &schema), Ok(json!(5)));
        assert_eq!(coerce("five", &schema), Ok(json!("five")));
        assert_eq!(coerce("x", &json!({"enum": ["x"]})), Ok(json!("x")));
    }

    #[test]
    fn defaults_become_the_strings_children_get() {
        assert_eq!(default_as_string(&json!(3000), &json!({})), "3000");
        assert_eq!(default_as_string(&json!(false), &json!({})), "false");
        assert_eq!(
            default_as_string(&json!(["a", "b"]), &json!({"x-separator": ";"})),
            "a;b"
        );
    }

    #[test]
    fn never_panics_on_any_input() {
        let schemas = [
            json!({"type": "integer"}),
            json!({"type": "number"}),
            json!({"type": "boolean"}),
            json!({"type": "object"}),
            json!({"type": "array", "items": {"type": ["number", "boolean"]}}),
        ];
        let alphabet = [
            '0', '9', '-', '+', '.', 'e', 'E', ',', ' ', '{', '}', '"', 'x', 'é', '\u{0}',
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(0..24))
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            for schema in &schemas {
                let _ = coerce(&text, schema);
            }
        }
    }
}
