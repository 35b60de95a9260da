//! SPEC §3: the environment validated against a JSON Schema before anything
//! starts. These tests pin the wording users see, and that no value ever does.

use crate::support::{Finished, Test};

/// The schema of a typical monorepo app (the research's example, trimmed).
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "APP_ENV": { "type": "string", "enum": ["development", "test", "staging", "production"] },
    "PORT": { "type": "integer", "minimum": 1, "maximum": 65535, "default": 3000, "description": "HTTP port of the API" },
    "TRUST_PROXY": { "type": "boolean", "default": false, "x-required-in": ["staging", "production"] },
    "LOG_LEVEL": { "enum": ["trace", "debug", "info", "warn", "error"], "default": "info" },
    "DATABASE_URL": { "type": "string", "format": "uri", "pattern": "^postgres(ql)?://", "writeOnly": true },
    "REDIS_URL": { "type": "string", "format": "uri", "pattern": "^rediss?://", "x-secret": true, "x-required-in": ["staging", "production"] },
    "SESSION_SECRET": { "type": "string", "minLength": 32, "writeOnly": true, "x-required-in": ["staging", "production"] },
    "ALLOWED_ORIGINS": { "type": "array", "minItems": 1, "uniqueItems": true,
                         "items": { "type": "string", "format": "uri" }, "x-required-in": ["production"] },
    "WORKERS": { "type": "integer", "default": 2 },
    "ADMIN_EMAIL": { "type": "string", "format": "email" },
    "BIND_HOST": { "type": "string", "anyOf": [ { "format": "ipv4" }, { "format": "ipv6" }, { "format": "hostname" } ] }
  },
  "required": ["DATABASE_URL"]
}"#;

const CONFIG: &str = r#"
[env]
schema = "config/env.schema.json"
files = [".env"]
context_var = "APP_ENV"

[process.app]
command = 'echo "PORT=$PORT TRUST_PROXY=$TRUST_PROXY LOG_LEVEL=$LOG_LEVEL APP_ENV=$APP_ENV PASSWORD=$DB_PASSWORD"'
instances = "${WORKERS}"
restart = "never"
"#;

const DB: &str = "postgres://app:pw@db/app";
const CANARY: &str = "s3cr3t-CANARY-1234567890-abc";

fn app() -> Test {
    Test::new()
        .clean_env()
        .file("config/env.schema.json", SCHEMA)
        .config(CONFIG)
}

fn assert_no_canary(finished: &Finished) {
    for (name, text) in [("stdout", &finished.stdout), ("stderr", &finished.stderr)] {
        assert!(!text.contains("CANARY"), "a value leaked on {name}:\n{text}");
    }
}

#[test]
fn a_valid_environment_starts_the_children_with_defaults_applied() {
    let finished = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .env("PORT", "")
        .args(["run"])
        .run();
    finished.assert_code(0);
    // Empty counts as unset, so PORT gets its default; WORKERS' default drives instances.
    let line = "PORT=3000 TRUST_PROXY=false LOG_LEVEL=info APP_ENV=development";
    assert!(
        finished.stdout.contains(&format!("app.0 | {line}")),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stdout.contains(&format!("app.1 | {line}")),
        "{}",
        finished.stdout
    );
}

#[test]
fn every_problem_is_reported_at_once_sorted_and_nothing_starts() {
    let finished = app()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", DB)
        .env("PORT", "80a")
        .env("SESSION_SECRET", CANARY)
        .env("ALLOWED_ORIGINS", "https://a.example,not a url")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert!(finished.stdout.is_empty(), "a child started: {}", finished.stdout);
    let errors: Vec<&str> = finished.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(
        errors,
        [
            "error: ALLOWED_ORIGINS: item 2: must be a valid uri",
            "error: PORT: expected a base-10 integer",
            "error: REDIS_URL: required in context \"production\" [secret]",
            "error: SESSION_SECRET: must be at least 32 characters [secret]",
            "error: TRUST_PROXY: required in context \"production\"",
        ]
    );
    assert_no_canary(&finished);
}

#[test]
fn context_only_requirements_apply_only_in_their_context() {
    let development = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .args(["check-env"])
        .run();
    development.assert_code(0);
    assert!(
        development.stdout.contains("context \"development\" (from APP_ENV)"),
        "{}",
        development.stdout
    );
    let production = app()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", DB)
        .args(["check-env"])
        .run();
    production.assert_code(78);
    assert!(production
        .stdout
        .contains("SESSION_SECRET: required in context \"production\" [secret]"));
}

#[test]
fn an_unset_context_fails_safe_to_production() {
    let finished = app().env("DATABASE_URL", DB).args(["check-env"]).run();
    finished.assert_code(78);
    assert!(
        finished
            .stdout
            .contains("REDIS_URL: required in context \"production\""),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stdout.contains("(from the fail-safe default)"),
        "{}",
        finished.stdout
    );
}

#[test]
fn the_context_flag_wins_over_the_setting_and_the_variable() {
    let finished = app()
        .env("APP_ENV", "production")
        .env("SUPERVISOR_CONTEXT", "staging")
        .env("DATABASE_URL", DB)
        .args(["check-env", "--context", "development"])
        .run();
    finished.assert_code(0);
    let finished = app()
        .env("APP_ENV", "development")
        .env("SUPERVISOR_CONTEXT", "staging")
        .env("DATABASE_URL", DB)
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(
        finished
            .stdout
            .contains("in context \"staging\" (from SUPERVISOR_CONTEXT)"),
        "{}",
        finished.stdout
    );
}

#[test]
fn an_unknown_context_flag_exits_64_listing_the_valid_ones() {
    let finished = app()
        .env("DATABASE_URL", DB)
        .args(["check-env", "--context", "prod"])
        .run();
    finished.assert_code(64);
    assert_eq!(
        finished.stderr.trim(),
        "error: --context \"prod\" is not a known context (expected one of: development, test, staging, production)"
    );
}

#[test]
fn an_invalid_context_variable_is_reported_without_its_value() {
    let finished = app()
        .env("APP_ENV", "prod-CANARY")
        .env("DATABASE_URL", DB)
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(finished
        .stdout
        .contains("APP_ENV: must be one of: development, test, staging, production"));
    assert_no_canary(&finished);
}

#[test]
fn booleans_accept_the_documented_words_and_children_get_the_original_string() {
    for word in ["FALSE", "0", "off", "no", "True", "1", "on", "yes"] {
        let finished = app()
            .env("APP_ENV", "development")
            .env("DATABASE_URL", DB)
            .env("TRUST_PROXY", word)
            .args(["run"])
            .run();
        finished.assert_code(0);
        assert!(
            finished.stdout.contains(&format!("TRUST_PROXY={word} ")),
            "{word}: {}",
            finished.stdout
        );
    }
    let finished = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .env("TRUST_PROXY", "maybe")
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(finished
        .stdout
        .contains("TRUST_PROXY: expected a boolean (true/false, 1/0, yes/no, on/off)\n"));
}

#[test]
fn dotenv_files_never_override_the_real_environment_and_never_expand() {
    let finished = app()
        .file(".env", "PORT=5000\nDB_PASSWORD='ab$cd'\nLOG_LEVEL=debug # verbose\n")
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .env("PORT", "4000")
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(
        finished
            .stdout
            .contains("PORT=4000 TRUST_PROXY=false LOG_LEVEL=debug APP_ENV=development PASSWORD=ab$cd"),
        "{}",
        finished.stdout
    );
}

#[test]
fn bad_dotenv_lines_are_reported_by_file_and_line_without_their_text() {
    let finished = app()
        .file(
            ".env",
            "GOOD=1\nTOKEN CANARY-in-a-bad-line\n1KEY=x\nQUOTED=\"CANARY never closed\n",
        )
        .env("DATABASE_URL", DB)
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert_eq!(
        finished.stderr.trim(),
        "error: .env:2: expected KEY=VALUE (names use letters, digits and `_`)\n\
         error: .env:3: a variable name cannot start with a digit\n\
         error: .env:4: the quote opened on line 4 is never closed"
    );
    assert_no_canary(&finished);
}

#[test]
fn a_declared_non_utf8_value_is_a_problem_and_an_undeclared_one_passes_through() {
    let finished = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .env_bytes("SESSION_SECRET", b"CANARY\xff-and-more-bytes-to-be-long-enough")
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(finished
        .stdout
        .contains("SESSION_SECRET: value is not valid UTF-8 [secret]"));
    assert_no_canary(&finished);
    let finished = Test::new()
        .clean_env()
        .file("config/env.schema.json", SCHEMA)
        .config("[env]\nschema = \"config/env.schema.json\"\ncontext_var = \"APP_ENV\"\n[process.app]\ncommand = 'printf %s \"$LEGACY\" | od -An -tx1'\nrestart = \"never\"\n")
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .env_bytes("LEGACY", b"\xfe\x01")
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("fe 01"), "{}", finished.stdout);
}

#[test]
fn check_env_json_has_the_same_problems() {
    let finished = app()
        .env("APP_ENV", "development")
        .env("PORT", "70000")
        .args(["check-env", "--format", "json"])
        .run();
    finished.assert_code(78);
    let report: serde_json::Value = serde_json::from_str(&finished.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["context"], "development");
    assert_eq!(
        report["problems"],
        serde_json::json!([
            {"variable": "DATABASE_URL", "message": "required", "secret": true},
            {"variable": "PORT", "message": "must be <= 65535", "secret": false},
        ])
    );
}

#[test]
fn a_root_rule_never_prints_the_environment() {
    // The validator's own message for a root `not` prints the whole instance.
    let schema = r#"{"type": "object", "properties": {"A": {"type": "string"}, "B": {"type": "string"}, "TOKEN": {"type": "string"}},
                     "not": {"required": ["A", "B"]}}"#;
    let finished = Test::new()
        .clean_env()
        .file("s.json", schema)
        .config("[env]\nschema = \"s.json\"\n[process.a]\ncommand = \"true\"\n")
        .env("A", "1")
        .env("B", "2")
        .env("TOKEN", CANARY)
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(
        finished
            .stdout
            .contains("environment: must not match a forbidden schema (schema /not)"),
        "{}",
        finished.stdout
    );
    assert_no_canary(&finished);
}

#[test]
fn formats_are_checked() {
    let finished = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", "postgres://ok@db/app")
        .env("ADMIN_EMAIL", "not-an-email")
        .env("BIND_HOST", "bad host!")
        .args(["check-env"])
        .run();
    finished.assert_code(78);
    assert!(
        finished.stdout.contains("ADMIN_EMAIL: must be a valid email\n"),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stdout.contains("BIND_HOST: must satisfy one of: must be a valid ipv4; or must be a valid ipv6; or must be a valid hostname"),
        "{}",
        finished.stdout
    );
}

fn schema_errors(schema: &str) -> String {
    let finished = Test::new()
        .clean_env()
        .file("s.json", schema)
        .config("[env]\nschema = \"s.json\"\n[process.a]\ncommand = \"echo started\"\n")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert!(finished.stdout.is_empty());
    finished.stderr
}

#[test]
fn an_invalid_schema_file_exits_78_naming_the_file() {
    let bad_json = schema_errors("{\"type\": \"object\",");
    assert!(
        bad_json.starts_with("error: s.json: invalid JSON at line 1 column 18: EOF while parsing a value"),
        "{bad_json}"
    );
    let bad_keywords = schema_errors(r#"{"properties": {"X": {"type": "strin", "minLength": "32"}}}"#);
    assert!(
        bad_keywords.contains("error: s.json: /properties/X/minLength: expected integer"),
        "{bad_keywords}"
    );
    assert!(
        bad_keywords.contains("error: s.json: /properties/X/type:"),
        "{bad_keywords}"
    );
    let unknown_format = schema_errors(r#"{"properties": {"X": {"type": "string", "format": "url"}}}"#);
    assert!(unknown_format.starts_with("error: s.json: "), "{unknown_format}");
    assert!(unknown_format.contains("url"), "{unknown_format}");
    let remote = schema_errors(r#"{"properties": {"X": {"$ref": "https://example.com/x.json"}}}"#);
    assert!(remote.starts_with("error: s.json: "), "{remote}");
    let bad_default =
        schema_errors(r#"{"properties": {"PORT": {"type": "integer", "maximum": 65535, "default": 70000}}}"#);
    assert_eq!(
        bad_default.trim(),
        "error: s.json: /properties/PORT/default: must be <= 65535"
    );
    let missing = Test::new()
        .clean_env()
        .config("[env]\nschema = \"nope.json\"\n[process.a]\ncommand = \"true\"\n")
        .args(["run"])
        .run();
    missing.assert_code(78);
    assert!(
        missing
            .stderr
            .starts_with("error: nope.json: cannot read the env schema"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_schema_with_hundreds_of_properties() {
    let properties: Vec<String> = (0..500)
        .map(|i| format!("\"VAR_{i}\": {{\"type\": \"integer\", \"minimum\": 0, \"default\": {i}}}"))
        .collect();
    let schema = format!("{{\"properties\": {{{}}}}}", properties.join(","));
    let finished = Test::new()
        .clean_env()
        .file("s.json", &schema)
        .config("[env]\nschema = \"s.json\"\n[process.a]\ncommand = 'echo \"$VAR_0 $VAR_499\"'\nrestart = \"never\"\n")
        .env("VAR_7", "-1")
        .env("VAR_8", "x")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert_eq!(
        finished.stderr.trim(),
        "error: VAR_7: must be >= 0\nerror: VAR_8: expected a base-10 integer"
    );
    let finished = Test::new()
        .clean_env()
        .file("s.json", &schema)
        .config("[env]\nschema = \"s.json\"\n[process.a]\ncommand = 'echo \"$VAR_0 $VAR_499\"'\nrestart = \"never\"\n")
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("a.0 | 0 499"));
}

#[test]
fn env_example_is_generated_from_the_schema() {
    let finished = app().args(["env-example"]).run();
    finished.assert_code(0);
    let text = &finished.stdout;
    assert!(
        text.contains("# HTTP port of the API\n# type: integer; default: 3000\nPORT=3000\n"),
        "{text}"
    );
    assert!(
        text.contains("# type: string; format: uri; required; secret\nDATABASE_URL=\n"),
        "{text}"
    );
    assert!(
        text.contains("# type: boolean; required in: staging, production; default: false\nTRUST_PROXY=false\n"),
        "{text}"
    );
    assert!(
        text.contains("# Contexts (APP_ENV): development, test, staging, production\n"),
        "{text}"
    );
}

#[test]
fn exec_gets_the_same_validated_environment() {
    let finished = app()
        .env("APP_ENV", "development")
        .env("DATABASE_URL", DB)
        .args(["exec", "--", "sh", "-c", "echo port=$PORT"])
        .run();
    finished.assert_code(0);
    assert_eq!(finished.stdout, "port=3000\n");
    let finished = app()
        .env("APP_ENV", "development")
        .args(["exec", "--", "echo", "never"])
        .run();
    finished.assert_code(78);
    assert!(finished.stdout.is_empty());
}

/// Issue 14: types, defaults and secrecy reached through `$ref` (2020-12
/// `$defs`, draft-07 `definitions`) and `allOf` count as if written in the
/// property; a `$ref` to another file is refused in our words.
#[test]
fn types_defaults_and_secrets_through_ref_and_all_of() {
    let schema = r##"{
  "type": "object",
  "$defs": {
    "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
    "flag": { "type": "boolean", "default": false },
    "secret": { "type": "string", "minLength": 8, "writeOnly": true }
  },
  "definitions": { "workers": { "type": "integer", "default": 3 } },
  "properties": {
    "PORT": { "$ref": "#/$defs/port" },
    "DEBUG": { "$ref": "#/$defs/flag" },
    "WORKERS": { "$ref": "#/definitions/workers" },
    "API_KEY": { "allOf": [ { "$ref": "#/$defs/secret" } ] }
  }
}"##;
    let config = "[env]\nschema = \"env.schema.json\"\n\n[process.app]\ncommand = 'echo \"PORT=$PORT DEBUG=$DEBUG WORKERS=$WORKERS\"'\nrestart = \"never\"\n";
    let run = Test::new()
        .config(config)
        .file("env.schema.json", schema)
        .env("PORT", "8080")
        .env("DEBUG", "yes")
        .env("API_KEY", "long-enough-key")
        .args(["run"])
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("app.0 | PORT=8080 DEBUG=yes WORKERS=3"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let bad = Test::new()
        .config(config)
        .file("env.schema.json", schema)
        .env("PORT", "80a")
        .env("API_KEY", "short")
        .args(["check-env"])
        .run();
    bad.assert_code(78);
    assert!(
        bad.stdout.contains("PORT: expected a base-10 integer"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("API_KEY") && bad.stdout.contains("secret"),
        "{}",
        bad.stdout
    );
    assert!(!bad.stdout.contains("short"), "{}", bad.stdout);
    let elsewhere = Test::new()
        .config(config)
        .file(
            "env.schema.json",
            r#"{"properties": {"PORT": {"$ref": "./common.json#/port"}}}"#,
        )
        .args(["check-env"])
        .run();
    elsewhere.assert_code(78);
    assert!(
        elsewhere
            .stderr
            .contains("/properties/PORT/$ref: \"./common.json#/port\" refers outside this schema"),
        "{}",
        elsewhere.stderr
    );
}
