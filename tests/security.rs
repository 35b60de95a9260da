//! Privilege drop and secrets: a child with `user` is really that user, and
//! no secret value ever reaches any output of ours.

use std::os::unix::fs::PermissionsExt;

use crate::support::db::Postgres;
use crate::support::{http, secs, wait_health, Test};

#[test]
fn user_drops_to_that_users_uid_gid_and_groups() {
    // Not a silent pass when not root: the suite runs as root (as CI does).
    assert!(
        nix::unistd::geteuid().is_root(),
        "changing user needs root: run ./scripts/test.sh as root, as CI does"
    );
    let test = Test::new().file("root-only.txt", "top secret\n").config(
        "[process.app]\ncommand = 'id -u; id -g; id -G; echo \"home=$HOME user=$USER\"; cat root-only.txt || echo denied'\nuser = \"nobody\"\nrestart = \"never\"\n",
    );
    let file = test.path().join("root-only.txt");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(test.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let finished = test.args(["run"]).run();
    finished.assert_code(0);
    let lines: Vec<&str> = finished
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("app.0 | "))
        .collect();
    assert_eq!(lines[0], "65534", "{}", finished.stdout);
    assert_eq!(lines[1], "65534");
    assert_eq!(lines[2], "65534", "supplementary groups are nobody's, not root's");
    assert!(lines[3].starts_with("home=/nonexistent user=nobody"), "{}", lines[3]);
    assert_eq!(lines[4], "denied");
    assert!(finished.stderr.contains("Permission denied"));
}

const CANARY_SECRET: &str = "CANARY-session-0123456789";
const CANARY_TOKEN: &str = "CANARY-token-abcdef";
const CANARY_PASSWORD: &str = "CANARY-pw";

const SCHEMA: &str = r#"{
  "properties": {
    "APP_ENV": {"enum": ["development", "production"], "default": "production"},
    "DATABASE_URL": {"type": "string", "format": "uri", "writeOnly": true},
    "SESSION_SECRET": {"type": "string", "minLength": 32, "writeOnly": true, "default": "CANARY-default-secret-value-0000000"},
    "API_TOKEN": {"type": "string", "pattern": "^tok_", "x-secret": true},
    "PORT": {"type": "integer", "default": 3000}
  },
  "required": ["DATABASE_URL"]
}"#;

fn app(database_url: &str, config_extra: &str) -> Test {
    Test::new()
        .clean_env()
        .file("env.schema.json", SCHEMA)
        .config(&format!(
            "[env]\nschema = \"env.schema.json\"\ncontext_var = \"APP_ENV\"\n{config_extra}\n[process.app]\ncommand = \"sleep 1000\"\n"
        ))
        .env("DATABASE_URL", database_url)
        .env("SESSION_SECRET", CANARY_SECRET)
        .env("API_TOKEN", CANARY_TOKEN)
}

fn assert_clean(what: &str, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains("CANARY"), "a secret leaked in {what}:\n{text}");
    }
}

#[test]
fn no_secret_value_reaches_any_output() {
    let url = format!("postgres://app:{CANARY_PASSWORD}@127.0.0.1:1/app");
    // Invalid environment: text and JSON reports, and `run`.
    for args in [
        vec!["check-env"],
        vec!["check-env", "--format", "json"],
        vec!["run"],
        vec!["exec", "--", "true"],
    ] {
        let finished = app(&url, "").args(args.clone()).run();
        assert_eq!(finished.code, 78, "{args:?}: {}", finished.stderr);
        assert_clean(&format!("{args:?}"), &[&finished.stdout, &finished.stderr]);
    }
    let example = app(&url, "").args(["env-example"]).run();
    example.assert_code(0);
    assert_clean("env-example", &[&example.stdout]);
    // A valid environment, JSON logs, health and metrics.
    let good = |test: Test| {
        test.env("SESSION_SECRET", &format!("{CANARY_SECRET}-long-enough"))
            .env("API_TOKEN", &format!("tok_{CANARY_TOKEN}"))
    };
    let mut run = good(app(&url, ""))
        .env("SUPERVISOR_LOG_FORMAT", "json")
        .args(["run"])
        .start();
    let address = run.health_address();
    let health = wait_health(&address, secs(10), "ok", |code, _| code == 200);
    let (_, metrics) = http("GET", &address, "/metrics");
    let (_, readyz) = http("GET", &address, "/readyz");
    run.assert_stops_cleanly(secs(10));
    assert_clean(
        "health, metrics and JSON logs",
        &[
            &health.to_string(),
            &metrics,
            &readyz,
            &run.stdout.text(),
            &run.stderr.text(),
        ],
    );
    // The database unreachable, with the password in the URL.
    let unreachable = good(app(&url, "[migrate]\ncommand = \"true\"\nconnect_timeout = \"1s\""))
        .args(["run"])
        .run();
    unreachable.assert_code(69);
    assert!(
        unreachable.stderr.contains("postgres://app@127.0.0.1:1/app"),
        "{}",
        unreachable.stderr
    );
    assert_clean("an unreachable database", &[&unreachable.stdout, &unreachable.stderr]);
    // Passwords that need percent-encoding, or given as `?password=`, and a
    // URL that cannot be parsed at all.
    for url in [
        "postgres://app:CANARY%2Dp%40ss%2Fw@127.0.0.1:1/app".to_string(),
        "postgres://app@127.0.0.1:1/app?sslmode=disable&password=CANARY%26pw".to_string(),
        "postgres://app:CANARY-pw@127.0.0.1:notaport/app".to_string(),
    ] {
        let finished = good(app(&url, "[migrate]\ncommand = \"true\"\nconnect_timeout = \"1s\""))
            .args(["migrate"])
            .run();
        assert_ne!(finished.code, 0, "{}", finished.stderr);
        assert_clean(
            &format!("migrate with {}", url.replace("CANARY", "…")),
            &[&finished.stdout, &finished.stderr],
        );
    }
}

#[test]
fn no_secret_value_reaches_the_lock_timeout_report() {
    let pg = Postgres::start();
    pg.create_database("app");
    let url = format!("postgres://postgres:{CANARY_PASSWORD}@127.0.0.1:{}/app", pg.port);
    let valid = |test: Test| {
        test.env("SESSION_SECRET", &format!("{CANARY_SECRET}-long-enough"))
            .env("API_TOKEN", "tok_x")
    };
    let mut holder = valid(app(&url, "[migrate]\ncommand = 'echo holding; sleep 4'"))
        .args(["migrate"])
        .start();
    holder.wait_stdout("migrate | holding", secs(30));
    let waiter = valid(app(&url, "[migrate]\ncommand = \"true\"\nlock_timeout = \"1s\""))
        .args(["migrate"])
        .run();
    waiter.assert_code(69);
    assert_clean("a lock timeout", &[&waiter.stdout, &waiter.stderr]);
    assert_eq!(holder.wait_exit(secs(30)), 0);
    assert_clean("the lock holder", &[&holder.stdout.text(), &holder.stderr.text()]);
}
