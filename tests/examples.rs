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
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
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

/// `docker stop` on every replica at once: each exits 0, no secret printed.
fn stop_all_cleanly(replicas: &mut [Running]) {
    for replica in replicas.iter() {
        replica.signal("TERM");
    }
    for replica in replicas.iter_mut() {
        assert_eq!(replica.wait_exit(secs(30)), 0);
        assert_no_canary(&[&replica.stdout.text(), &replica.stderr.text()]);
    }
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
        assert!(
            missing.stdout.contains(expected),
            "{expected} missing from:\n{}",
            missing.stdout
        );
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
    assert!(
        body.contains("upstream: api["),
        "the frontend did not reach the API: {body}"
    );

    run.assert_stops_cleanly(secs(20));
    let stdout = run.stdout.text();
    let stderr = run.stderr.text();
    // Redis was reachable before the migration ran, which finished before anything started.
    assert_before(
        &stderr,
        "reachable target=tcp://${REDIS_HOST:-redis}",
        "connected database=",
    );
    assert_before(&stderr, "migration command finished", "started process=api");
    assert_before(&stderr, "ready process=api", "started process=web");
    // Stopping goes the other way: the frontend before the API it calls.
    assert_before(&stdout, "web[0]: SIGTERM", "api[0]: SIGTERM");
    assert_no_canary(&[&stdout, &stderr]);
    assert_eq!(pg.sql("monolith", "SELECT count(*) FROM _prisma_migrations"), "2");

    // The next deploy of the same image: prisma/ unchanged, so the command is skipped.
    let mut again = monolith(&url, redis_port).args(["run"]).start();
    again.wait_stderr("migration command skipped: its fingerprint is unchanged", secs(30));
    let address = again.health_address();
    wait_health(&address, secs(30), "up again", |code, _| code == 200);
    again.assert_stops_cleanly(secs(20));
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
        pg.sql(
            "app",
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'display_name'"
        ),
        "1"
    );
    stop_all_cleanly(&mut replicas);
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

/// The example runs its app as `node`, the user of the official Node images;
/// this machine has no such user, so `nobody` stands in. The copy is made
/// readable to it.
fn mysql_staging(database_url: &str, context: Option<&str>) -> Test {
    use std::os::unix::fs::PermissionsExt;
    let test = Test::example("mysql-staging");
    let config = std::fs::read_to_string(test.path().join("supervisor.toml")).expect("config");
    assert!(
        config.contains("user = \"node\""),
        "the example no longer drops to node"
    );
    let root = test.path().parent().expect("parent").to_path_buf();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut test = test
        .config(&config.replace("user = \"node\"", "user = \"nobody\""))
        .env("DATABASE_URL", database_url)
        .env("PORT", &free_port().to_string())
        .env("SESSION_SECRET", CANARY);
    if let Some(context) = context {
        test = test.env("APP_ENV", context);
    }
    test
}

fn uid_of(pid: i64) -> String {
    status_field(pid as i32, "Uid")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn mysql_staging_seeds_staging_only_once_per_replica_under_the_lock_as_non_root() {
    node_available();
    let db = MariaDb::start();
    let staging_url = db.create_database("staging");

    // Two staging replicas at once: migrations once, the (idempotent) seed in each, one at a time.
    let mut replicas: Vec<Running> = (0..2)
        .map(|_| {
            mysql_staging(&staging_url, Some("staging"))
                .env("STAGING_BASIC_AUTH", "demo:canary-basic-auth-pw")
                .args(["run"])
                .start()
        })
        .collect();
    for replica in &replicas {
        let address = replica.health_address();
        let health = wait_health(&address, secs(60), "staging replica up", |code, _| code == 200);
        let pid = health["processes"][0]["pid"].as_i64().expect("pid");
        assert_eq!(uid_of(pid), "65534", "the app runs as nobody: {health}");
        replica.wait_stdout("seed | The seed command has been executed.", secs(10));
    }
    let applied: usize = replicas
        .iter()
        .filter(|replica| {
            replica
                .stdout
                .text()
                .contains("migrate | All migrations have been successfully applied.")
        })
        .count();
    assert_eq!(applied, 1);
    assert_eq!(db.sql("staging", "SELECT count(*) FROM _prisma_migrations"), "2");
    assert_eq!(db.sql("staging", "SELECT count(*) FROM Product"), "3");
    stop_all_cleanly(&mut replicas);

    // The same image in production: its own required keys, and no seed.
    let production_url = db.create_database("production");
    let refused = mysql_staging(&production_url, None).args(["run"]).run();
    refused.assert_code(78);
    assert!(refused.stderr.contains("SENTRY_DSN"), "{}", refused.stderr);
    assert!(refused.stderr.contains("STRIPE_SECRET_KEY"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("STAGING_BASIC_AUTH"), "{}", refused.stderr);

    let mut production = mysql_staging(&production_url, None)
        .env("STRIPE_SECRET_KEY", "sk_live_canary0000000000")
        .env("SENTRY_DSN", "https://key@sentry.example.com/42")
        .args(["run"])
        .start();
    let address = production.health_address();
    wait_health(&address, secs(60), "production up", |code, _| code == 200);
    production.assert_stops_cleanly(secs(20));
    assert!(
        !production.stdout.text().contains("seed |"),
        "{}",
        production.stdout.text()
    );
    assert_eq!(db.sql("production", "SELECT count(*) FROM Product"), "0");
    assert_no_canary(&[&production.stdout.text(), &production.stderr.text()]);
}

fn nextjs_tunnel(database_url: &str) -> Test {
    Test::example("nextjs-tunnel")
        .pid1()
        .env("DATABASE_URL", database_url)
        .env("PORT", &free_port().to_string())
        .env("NEXT_PUBLIC_SITE_URL", "https://site.example.com")
        .env("AUTH_SECRET", CANARY)
}

#[test]
fn nextjs_tunnel_opens_the_tunnel_once_next_is_ready_and_closes_it_first() {
    node_available();
    let pg = Postgres::start();
    let url = pg.create_database("site");

    // Without a token the sidecar would crash-loop; instead nothing starts.
    let refused = nextjs_tunnel(&url).args(["run"]).run();
    refused.assert_code(78);
    assert!(refused.stderr.contains("TUNNEL_TOKEN"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    let mut run = nextjs_tunnel(&url)
        .env("TUNNEL_TOKEN", "canary-tunnel-token-0123456789abcdef")
        .args(["run"])
        .start();
    run.wait_stdout("migrate | drizzle: up to date", secs(30));
    let address = run.health_address();
    wait_health(&address, secs(30), "next and tunnel up", |code, json| {
        code == 200 && json["processes"].as_array().is_some_and(|p| p.len() == 2)
    });
    run.wait_stdout("tunnel.0 | INF Registered tunnel connection", secs(10));
    let port = run.env("PORT").expect("PORT");
    let (code, body) = http("GET", &format!("127.0.0.1:{port}"), "/");
    assert_eq!(code, 200, "{body}");

    run.assert_stops_cleanly(secs(20));
    let stdout = run.stdout.text();
    let stderr = run.stderr.text();
    assert_before(&stderr, "ready process=next", "started process=tunnel");
    // The tunnel closes before Next stops: no request arrives at a stopping server.
    assert_before(&stdout, "Initiating graceful shutdown", "next[0]: SIGTERM");
    assert_eq!(pg.sql("site", "SELECT count(*) FROM drizzle.__drizzle_migrations"), "1");
    assert_no_canary(&[&stdout, &stderr, &refused.stderr]);
}

fn native_sql(database_url: &str) -> Test {
    Test::example("native-sql")
        .pid1()
        .env("DATABASE_URL", database_url)
        .env("PORT", &free_port().to_string())
        .env(
            "API_KEYS",
            "canary-key-000000000000000001,canary-key-000000000000000002",
        )
        // A slow backfill, so the four replicas certainly overlap on the lock.
        .file("migrations/20260201000000_backfill.sql", "SELECT pg_sleep(2);\n")
}

#[test]
fn native_sql_four_replicas_apply_once_and_healthcheck_follows_the_phase() {
    let pg = Postgres::start();
    let url = pg.create_database("api");
    let mut replicas: Vec<Running> = (0..4).map(|_| native_sql(&url).args(["run"]).start()).collect();

    // While the migrations run, the Docker HEALTHCHECK command says "not yet".
    let first = replicas[0].health_address();
    let check = |address: &str| {
        Test::new()
            .args(["healthcheck", "--url", &format!("http://{address}/health")])
            .run()
            .code
    };
    wait_health(&first, secs(10), "replica starting", |code, json| {
        code == 503 && json["phase"] != "running"
    });
    assert_eq!(check(&first), 1);

    for replica in &replicas {
        let address = replica.health_address();
        wait_health(&address, secs(60), "replica serving", |code, _| code == 200);
        assert_eq!(check(&address), 0);
    }
    let appliers = replicas
        .iter()
        .filter(|replica| replica.stderr.text().contains("Applied 4 migration(s)"))
        .count();
    assert_eq!(appliers, 1, "exactly one replica applies the migrations");
    assert_eq!(pg.sql("api", "SELECT count(*) FROM _supervisor_migrations"), "4");
    assert_eq!(
        pg.sql(
            "api",
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_account_id_at_idx'"
        ),
        "1"
    );
    stop_all_cleanly(&mut replicas);
    for replica in &replicas {
        assert!(
            replica.stdout.text().contains("api: SIGTERM, stopped"),
            "{}",
            replica.stdout.text()
        );
    }
}

#[test]
fn basic_serves_through_the_backend_and_stops_frontend_first() {
    let mut run = Test::example("basic")
        .pid1()
        .env("BACKEND_PORT", &free_port().to_string())
        .env("FRONTEND_PORT", &free_port().to_string())
        .env("WORKER_CRASH_CHANCE", "0")
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(20), "backend, frontend and worker up", |code, json| {
        code == 200 && json["processes"].as_array().is_some_and(|p| p.len() == 3)
    });
    let port = run.env("FRONTEND_PORT").expect("FRONTEND_PORT");
    let (code, body) = http("GET", &format!("127.0.0.1:{port}"), "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("backend says:"), "{body}");
    run.assert_stops_cleanly(secs(20));
    let stderr = run.stderr.text();
    assert_before(&stderr, "ready process=backend", "started process=frontend");
    assert_before(&stderr, "stopped process=frontend", "stopped process=backend");
}
