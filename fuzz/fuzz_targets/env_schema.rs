//! Arbitrary schemas and environments: loading, coercion and validation
//! never panic, and no value of the environment appears in a report.
#![no_main]

use std::ffi::OsString;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use supervisor::env::{self, coerce, schema::Schema, ContextInputs};
use supervisor::environment::Environment;

const CANARY: &str = "QQcanaryQQ";
/// Values that do convert (integers, numbers, arrays, objects) must not leak either.
const NUMERIC_CANARY: &str = "7319531";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (schema_text, env_text) = text.split_once('\u{0}').unwrap_or((text, ""));
    let Ok(document) = serde_json::from_str::<serde_json::Value>(schema_text) else {
        // Not JSON: still exercise coercion against simple schemas.
        for schema in [
            serde_json::json!({"type": "integer"}),
            serde_json::json!({"type": "number"}),
            serde_json::json!({"type": "boolean"}),
            serde_json::json!({"type": "array", "items": {"type": "integer"}}),
            serde_json::json!({"type": "object"}),
        ] {
            let _ = coerce::coerce(text, &schema);
        }
        return;
    };
    let Ok(schema) = Schema::from_document(Path::new("s.json"), document) else {
        return;
    };
    // Every declared variable gets a value carrying a canary, in turn a
    // string, an integer, a number, an array and an object, so that values
    // that convert are exercised too.
    let forms = [
        format!("{CANARY}{env_text}"),
        format!("{NUMERIC_CANARY}1"),
        format!("{NUMERIC_CANARY}1.5"),
        format!("{NUMERIC_CANARY}1,{NUMERIC_CANARY}2"),
        format!("{{\"k\":\"{CANARY}\",\"n\":{NUMERIC_CANARY}1}}"),
    ];
    let mut vars: Environment = schema
        .properties
        .keys()
        .enumerate()
        .map(|(index, name)| (OsString::from(name), OsString::from(forms[index % forms.len()].clone())))
        .collect();
    let inputs = ContextInputs {
        flag: None,
        setting: None,
    };
    if let Ok(report) = env::validate(&schema, &mut vars, Some("APP_ENV"), &inputs) {
        let rendered = report.text() + &report.json();
        assert!(!rendered.contains(CANARY), "a value leaked into a report");
        // The schema itself may name the number (a `minimum`, an `enum`): then it proves nothing.
        if !schema_text.contains(NUMERIC_CANARY) {
            assert!(!rendered.contains(NUMERIC_CANARY), "a value leaked into a report");
        }
    }
});
