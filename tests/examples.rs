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

fn compose_stack(database_url: &str) -> Test {
    Test::example("compose-stack")
        .env("DATABASE_URL", database_url)
        .env("PORT", &free_port().to_string())
        .env("PUBLIC_URL", "https://app.example.com")
        .env("SESSION_SECRET", CANARY)
}

/// A slow backfill appended to the example's Drizzle migrations, so replicas
/// starting together are certain to overlap inside the migrator.
fn add_slow_drizzle_migration(test: Test) -> Test {
    let journal_path = test.path().join("drizzle/meta/_journal.json");
    let mut journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal_path).expect("journal")).expect("journal JSON");
    journal["entries"]
        .as_array_mut()
        .expect("entries")
        .push(serde_json::json!({"idx": 1, "version": "7", "when": 1767690000000u64, "tag": "0001_backfill", "breakpoints": true}));
    test.file("drizzle/meta/_journal.json", &journal.to_string()).file(
        "drizzle/0001_backfill.sql",
        "ALTER TABLE \"users\" ADD COLUMN \"display_name\" text;\n--> statement-breakpoint\nUPDATE \"users\" SET \"display_name\" = \"email\";\n--> statement-breakpoint\nSELECT pg_sleep(2);\n",
    )
}

#[test]
fn compose_stack_replicas_racing_through_drizzle_apply_once_only_under_the_lock() {
    node_available();
    let pg = Postgres::start();

    // Without supervisor: four replicas run drizzle's migrator at once. Each
    // reads "nothing applied" before any commits, so all but one fail (or
    // apply twice). This is the bug the lock exists for.
    let unlocked_url = pg.create_database("unlocked");
    let unlocked = add_slow_drizzle_migration(compose_stack(&unlocked_url));
    let racers: Vec<_> = (0..4)
        .map(|_| {
            Command::new("node")
                .arg("scripts/migrate.js")
                .current_dir(unlocked.path())
                .env("DATABASE_URL", &unlocked_url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("node")
        })
        .collect();
    let failed = racers
        .into_iter()
        .map(|racer| racer.wait_with_output().expect("wait"))
        .filter(|out| !out.status.success())
        .count();
    let recorded = pg.sql("unlocked", "SELECT count(*) FROM drizzle.__drizzle_migrations");
    eprintln!("without the lock: {failed} of 4 replicas failed, {recorded} history rows");
    assert!(
        failed > 0 || recorded != "2",
        "four unlocked replicas raced cleanly: the race test proves nothing"
    );

    // With supervisor: the same four replicas, each a whole `supervisor run`.
    let url = pg.create_database("app");
    let mut replicas: Vec<Running> = (0..4)
        .map(|_| add_slow_drizzle_migration(compose_stack(&url)).args(["run"]).start())
        .collect();
    for replica in &replicas {
        let address = replica.health_address();
        wait_health(&address, secs(60), "replica up after migrations", |code, _| code == 200);
    }
    let ran: Vec<bool> = replicas
        .iter()
        .map(|replica| replica.stdout.text().contains("migrate | drizzle: migrations applied"))
        .collect();
    assert_eq!(ran.iter().filter(|&&ran| ran).count(), 1, "the migrator ran in {ran:?}");
    assert_eq!(pg.sql("app", "SELECT count(*) FROM drizzle.__drizzle_migrations"), "2");
    assert_eq!(
        pg.sql("app", "SELECT count(*) FROM information_schema.columns WHERE column_name = 'display_name'"),
        "1"
    );
    for replica in &mut replicas {
        replica.signal("TERM");
        assert_eq!(replica.wait_exit(secs(20)), 0);
        assert_no_canary(&[&replica.stdout.text(), &replica.stderr.text()]);
    }
}

#[test]
fn compose_stack_one_off_job_gets_the_validated_environment() {
    node_available();
    let pg = Postgres::start();
    let url = pg.create_database("app");
    // The schema the job needs exists once the app has migrated.
    compose_stack(&url).args(["migrate"]).run().assert_code(0);

    let job = compose_stack(&url)
        .args(["exec", "--", "node", "scripts/invite-generate.js", "--count", "5"])
        .run();
    job.assert_code(0);
    assert_eq!(job.stdout.lines().count(), 5, "{}", job.stdout);
    assert_eq!(pg.sql("app", "SELECT count(*) FROM invites"), "5");

    // A missing variable stops the job before it runs, as it stops the app.
    let refused = Test::example("compose-stack")
        .env("DATABASE_URL", &url)
        .args(["exec", "--", "node", "scripts/invite-generate.js", "--count", "5"])
        .run();
    refused.assert_code(78);
    assert!(refused.stderr.contains("PUBLIC_URL"), "{}", refused.stderr);
    assert!(refused.stderr.contains("SESSION_SECRET"), "{}", refused.stderr);
    assert_eq!(pg.sql("app", "SELECT count(*) FROM invites"), "5");
}
