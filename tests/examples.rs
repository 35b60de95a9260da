//! examples/: each deployment shape, run end to end against a real throwaway
//! database, with the stand-ins of `examples/stand-ins` as the app processes
//! and the example's `supervisor.toml` and env schema exactly as committed.

use std::process::Command;

use crate::support::db::{MariaDb, Postgres};
use crate::support::*;

/// Secrets of 32+ characters that must never appear in any output.
const CANARY: &str = "canary-session-4f1d9b7e-must-never-be-printed";
const CANARY_KEY: &str = "canary-stream-key-88c2-never-printed";

fn node_available() {
    let found = Command::new("node").arg("--version").output().is_ok_and(|out| out.status.success());
    assert!(found, "node not found: run ./scripts/test.sh, which installs it");
}

fn monolith(database_url: &str, redis_port: u16) -> Test {
    Test::example("monolith")
        .pid1()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", database_url)
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", &redis_port.to_string())
        .env("API_PORT", &free_port().to_string())
        .env("WEB_PORT", &free_port().to_string())
        .env("SESSION_SECRET", CANARY)
        .env("JWT_SECRET", CANARY)
        .env("CORS_ORIGINS", "https://app.example.com, https://admin.example.com")
        .env("TRUST_PROXY", "true")
        .env("REALTIME_STREAM_URL", "https://stream.example.com/v1")
        .env("REALTIME_STREAM_KEY", CANARY_KEY)
}

fn assert_no_canary(outputs: &[&str]) {
    for output in outputs {
        assert!(!output.contains("canary"), "a secret was printed:\n{output}");
    }
}

#[test]
fn monolith_migrates_once_then_runs_api_instances_web_and_bot_in_order() {
    node_available();
    let pg = Postgres::start();
    let url = pg.create_database("monolith");
    // Redis is only waited on (wait_for): a listener the test holds stands for it.
    let redis = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let redis_port = redis.local_addr().expect("address").port();

    // Production without its production-only keys, and a short secret: all reported, nothing starts.
    let missing = Test::example("monolith")
        .env("DATABASE_URL", &url)
        .env("SESSION_SECRET", "canary-too-short")
        .env("JWT_SECRET", CANARY)
        .args(["check-env"])
        .run();
    missing.assert_code(78);
    for expected in [
        "CORS_ORIGINS",
        "REALTIME_STREAM_KEY",
        "REALTIME_STREAM_URL",
        "TRUST_PROXY",
        "SESSION_SECRET: must be at least 32 characters",
    ] {
        assert!(missing.stdout.contains(expected), "{expected} missing from:\n{}", missing.stdout);
    }
    assert_no_canary(&[&missing.stdout, &missing.stderr]);

    let mut run = monolith(&url, redis_port).args(["run"]).start();
    run.wait_stdout("migrate | All migrations have been successfully applied.", secs(30));
    let address = run.health_address();
    let health = wait_health(&address, secs(30), "api ×2, web and bot up and ready", |code, json| {
        code == 200 && json["processes"].as_array().is_some_and(|p| p.len() == 4)
    });
    let names: Vec<&str> = health["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "api", "web", "bot"], "{health}");
    let web_port = run_env(&run, "WEB_PORT");
    let (code, body) = http("GET", &format!("127.0.0.1:{web_port}"), "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("upstream: api["), "the frontend did not reach the API: {body}");

    run.signal("TERM");
    assert_eq!(run.wait_exit(secs(20)), 0);
    let stdout = run.stdout.text();
    let stderr = run.stderr.text();
    let at = |text: &str, needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing:\n{text}"));
    // Redis was reachable before the migration ran, which finished before anything started.
    assert!(at(&stderr, "reachable target=tcp://${REDIS_HOST:-redis}") < at(&stderr, "connected database="), "{stderr}");
    assert!(at(&stderr, "migration command finished") < at(&stderr, "started process=api"), "{stderr}");
    assert!(at(&stderr, "ready process=api") < at(&stderr, "started process=web"), "{stderr}");
    // Stopping goes the other way: the frontend before the API it calls.
    assert!(at(&stdout, "web[0]: SIGTERM") < at(&stdout, "api[0]: SIGTERM"), "{stdout}");
    assert_no_canary(&[&stdout, &stderr]);
    assert_eq!(pg.sql("monolith", "SELECT count(*) FROM _prisma_migrations"), "2");

    // The next deploy of the same image: prisma/ unchanged, so the command is skipped.
    let mut again = monolith(&url, redis_port).args(["run"]).start();
    again.wait_stderr("migration command skipped: its fingerprint is unchanged", secs(30));
    let address = again.health_address();
    wait_health(&address, secs(30), "up again", |code, _| code == 200);
    again.signal("TERM");
    assert_eq!(again.wait_exit(secs(20)), 0);
    assert!(!again.stdout.text().contains("migrate |"), "{}", again.stdout.text());
    drop(redis);
}

/// A variable the test gave the run (ports chosen at random).
fn run_env(run: &Running, name: &str) -> String {
    run.env(name).unwrap_or_else(|| panic!("{name} not set"))
}
