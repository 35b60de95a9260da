//! SPEC §4: migrations applied exactly once across replicas, under a lock,
//! against real PostgreSQL and MariaDB servers started by the harness.

use std::time::{Duration, Instant};

use crate::support::db::{MariaDb, Postgres};
use crate::support::{assert_before, secs, wait_lines, Running, Test};

const MIGRATIONS: [(&str, &str); 3] = [
    ("migrations/1_users.sql", "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\nCREATE INDEX users_email ON users (email);\n"),
    ("migrations/2_slow.sql", "SELECT pg_sleep(1);\nINSERT INTO users (email) VALUES ('a@example.com');\n"),
    ("migrations/3_orders.sql", "CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users);\n"),
];

/// A replica: `supervisor migrate` with `files` and the config's [migrate] body.
fn replica(url: &str, migrate: &str, files: &[(&str, &str)]) -> Test {
    let mut test = Test::new()
        .config(&format!("[migrate]\n{migrate}\n[process.app]\ncommand = \"true\"\n"))
        .env("DATABASE_URL", url);
    for (name, text) in files {
        test = test.file(name, text);
    }
    test.args(["migrate"])
}

fn native(url: &str) -> Test {
    replica(url, "dir = \"migrations\"", &MIGRATIONS)
}

#[test]
fn sixteen_replicas_racing_apply_exactly_once_and_all_exit_zero() {
    let pg = Postgres::start();
    let url = pg.create_database("race");
    let alone = {
        let db = pg.create_database("alone");
        let started = Instant::now();
        native(&db).run().assert_code(0);
        started.elapsed()
    };
    let started = Instant::now();
    let mut replicas: Vec<Running> = (0..16).map(|_| native(&url).start()).collect();
    let codes: Vec<i32> = replicas.iter_mut().map(|r| r.wait_exit(secs(60))).collect();
    let all = started.elapsed();
    assert!(codes.iter().all(|&c| c == 0), "exit codes {codes:?}");
    let stderrs: Vec<String> = replicas.iter().map(|r| r.stderr.text()).collect();
    let appliers = stderrs.iter().filter(|s| s.contains("Applied 3 migration(s)")).count();
    assert_eq!(appliers, 1, "exactly one replica applies:\n{}", stderrs.join("\n---\n"));
    assert_eq!(
        pg.sql(
            "race",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM _supervisor_migrations"
        ),
        "1,2,3"
    );
    assert_eq!(pg.sql("race", "SELECT count(*) FROM users"), "1");
    assert_eq!(
        pg.sql("race", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
        "0"
    );
    eprintln!(
        "16 racing replicas: {all:?}; one replica alone: {alone:?}; ratio {:.2}",
        all.as_secs_f64() / alone.as_secs_f64()
    );
}

#[test]
fn a_failed_migration_rolls_back_is_not_recorded_and_exits_65() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let finished = replica(
        &url,
        "dir = \"migrations\"",
        &[
            ("migrations/1_ok.sql", "CREATE TABLE a (id int);"),
            ("migrations/2_boom.sql", "CREATE TABLE b (id int);\nSELECT 1 / 0;"),
        ],
    )
    .run();
    finished.assert_code(65);
    assert!(
        finished
            .stderr
            .contains("migrations/2_boom.sql failed and was rolled back"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains("division by zero (SQLSTATE 22012)"),
        "{}",
        finished.stderr
    );
    assert_eq!(
        pg.sql(
            "app",
            "SELECT string_agg(version::text, ',') FROM _supervisor_migrations"
        ),
        "1"
    );
    assert_eq!(
        pg.sql("app", "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"),
        "0"
    );
}

#[test]
fn a_changed_applied_file_is_refused() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let files = [("migrations/1_init.sql", "CREATE TABLE a (id int);\n")];
    replica(&url, "dir = \"migrations\"", &files).run().assert_code(0);
    let finished = replica(
        &url,
        "dir = \"migrations\"",
        &[("migrations/1_init.sql", "CREATE TABLE a (id bigint);\n")],
    )
    .run();
    finished.assert_code(65);
    assert!(
        finished
            .stderr
            .contains("migrations/1_init.sql (version 1) changed after it was applied"),
        "{}",
        finished.stderr
    );
    let crlf = replica(
        &url,
        "dir = \"migrations\"",
        &[("migrations/1_init.sql", "CREATE TABLE a (id int);\r\n")],
    )
    .run();
    crlf.assert_code(65);
    assert!(crlf.stderr.contains("line endings"), "{}", crlf.stderr);
    // A version recorded but missing from this image is only a warning.
    replica(&url, "dir = \"migrations\"", &[("migrations/.keep", "")])
        .run()
        .assert_code(0);
}

#[test]
fn create_index_concurrently_runs_with_the_no_transaction_marker() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let files = [
        (
            "migrations/1_table.sql",
            "CREATE TABLE t (a int);\nINSERT INTO t SELECT g FROM generate_series(1, 50000) g;\n",
        ),
        (
            "migrations/2_index.sql",
            "-- supervisor:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
        ),
    ];
    let mut replicas: Vec<Running> = (0..4)
        .map(|_| replica(&url, "dir = \"migrations\"", &files).start())
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    }
    assert_eq!(
        pg.sql(
            "app",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass"
        ),
        "t"
    );
    assert_eq!(pg.sql("app", "SELECT count(*) FROM _supervisor_migrations"), "2");
}

#[test]
fn command_mode_runs_once_per_fingerprint_and_never_overlaps() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let log = tempfile::tempdir().expect("tempdir");
    let log_file = log.path().join("runs.log");
    // Without a fingerprint every replica runs it, one after another.
    let command = format!(
        "command = 'echo \"start $(date +%s%N)\" >> {0}; sleep 0.3; echo \"end $(date +%s%N)\" >> {0}'",
        log_file.display()
    );
    let mut replicas: Vec<Running> = (0..5).map(|_| replica(&url, &command, &[]).start()).collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
        // Our own `CREATE TABLE IF NOT EXISTS` notices are not the user's business.
        let stderr = replica.stderr.text();
        assert!(!stderr.contains("already exists, skipping"), "{stderr}");
    }
    let lines = wait_lines(&log_file, 10, secs(1));
    let stamps: Vec<(String, u128)> = lines
        .iter()
        .map(|l| {
            let (kind, at) = l.split_once(' ').expect("kind and time");
            (kind.to_string(), at.parse().expect("time"))
        })
        .collect();
    for pair in stamps.chunks(2) {
        assert_eq!(
            (pair[0].0.as_str(), pair[1].0.as_str()),
            ("start", "end"),
            "runs overlapped: {lines:?}"
        );
    }
    assert!(stamps.windows(2).all(|w| w[0].1 <= w[1].1), "out of order: {lines:?}");
    // With a fingerprint: once, then skipped until a watched file changes.
    std::fs::remove_file(&log_file).expect("reset");
    let fingerprinted = format!("{command}\nfingerprint = [\"db/migrations/**\"]");
    let files = [
        ("db/migrations/1.sql", "create table x ();"),
        ("README.md", "unrelated"),
    ];
    let mut replicas: Vec<Running> = (0..5).map(|_| replica(&url, &fingerprinted, &files).start()).collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    }
    assert_eq!(wait_lines(&log_file, 2, secs(1)).len(), 2, "ran more than once");
    let again = replica(&url, &fingerprinted, &files).run();
    again.assert_code(0);
    assert!(again.stderr.contains("fingerprint is unchanged"), "{}", again.stderr);
    assert_eq!(wait_lines(&log_file, 2, secs(1)).len(), 2);
    let changed = [
        ("db/migrations/1.sql", "create table x ();"),
        ("db/migrations/2.sql", "alter table x add y int;"),
    ];
    replica(&url, &fingerprinted, &changed).run().assert_code(0);
    assert_eq!(wait_lines(&log_file, 4, secs(1)).len(), 4);
    assert!(replica(&url, "command = \"exit 7\"", &[]).run().code == 7);
}

#[test]
fn sigkill_of_the_lock_holder_lets_the_next_replica_proceed() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let marker = tempfile::tempdir().expect("tempdir");
    let first = marker.path().join("first");
    let command = format!(
        "command = 'if [ -f {0} ]; then exit 0; fi; touch {0}; echo holding; sleep 60'",
        first.display()
    );
    let mut holder = replica(&url, &command, &[]).pid1().start();
    holder.wait_stdout("migrate | holding", secs(30));
    let mut waiter = replica(&url, &command, &[]).start();
    waiter.wait_stderr("waiting for the migration lock held by", secs(30));
    crate::support::send(holder.pid(), "KILL");
    assert_eq!(waiter.wait_exit(secs(60)), 0, "{}", waiter.stderr.text());
    // The holder's command did not finish: the lease is waited out first.
    let stderr = waiter.stderr.text();
    assert!(stderr.contains("which did not finish: waiting 12s"), "{stderr}");
    let _ = holder.wait_exit(secs(10));
}

#[test]
fn lock_timeout_exits_69_and_names_the_holder() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let mut holder = replica(&url, "command = 'echo holding; sleep 5'", &[]).start();
    holder.wait_stdout("migrate | holding", secs(30));
    let finished = replica(&url, "command = 'echo never'\nlock_timeout = \"1s\"", &[]).run();
    finished.assert_code(69);
    assert!(
        finished
            .stderr
            .contains("the migration lock was not free within 1s; held by pid"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("supervisor@"), "{}", finished.stderr);
    assert!(!finished.stdout.contains("never"));
    assert_eq!(holder.wait_exit(secs(30)), 0);
}

#[test]
fn a_database_that_is_not_up_yet_is_waited_for() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    pg.stop_server("fast");
    let mut replica = native(&url).start();
    replica.wait_stderr("database not reachable yet", secs(30));
    pg.start_server();
    assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    assert_eq!(pg.sql("app", "SELECT count(*) FROM _supervisor_migrations"), "3");
}

/// SPEC §4: `connect_timeout` is a budget spent in full. A database that
/// comes up a second before the budget ends is found; one that never does
/// is given up on no earlier than the budget.
#[test]
fn connect_timeout_is_spent_in_full() {
    let pg = Postgres::start();
    pg.create_database("app");
    let port = crate::support::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/app");
    let started = Instant::now();
    let mut late = replica(&url, "dir = \"migrations\"\nconnect_timeout = \"5s\"", &MIGRATIONS).start();
    late.wait_stderr("database not reachable yet", secs(10));
    while started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _up = crate::support::relay::Relay::start_on(port, pg.port);
    assert_eq!(late.wait_exit(secs(30)), 0, "{}", late.stderr.text());

    let unreachable = format!("postgres://postgres@127.0.0.1:{}/app", crate::support::free_port());
    let started = Instant::now();
    let finished = replica(
        &unreachable,
        "dir = \"migrations\"\nconnect_timeout = \"3s\"",
        &MIGRATIONS,
    )
    .run();
    finished.assert_code(69);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        finished.stderr.contains("is not reachable after 3s"),
        "{}",
        finished.stderr
    );
}

/// SPEC §4: a fingerprint pattern that matches nothing would skip every
/// later migration; it is refused, naming it, before anything runs.
#[test]
fn a_fingerprint_pattern_matching_no_file_is_a_config_error() {
    let finished = replica(
        "postgres://postgres@127.0.0.1:1/app",
        "command = 'echo ran'\nfingerprint = [\"prisma/migration/**\"]",
        &[("prisma/migrations/1_init/migration.sql", "select 1;")],
    )
    .run();
    finished.assert_code(78);
    assert!(
        finished
            .stderr
            .contains("migrate.fingerprint: \"prisma/migration/**\" matches no file"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stdout.contains("ran"), "{}", finished.stdout);
}

/// SPEC §4: through a transaction-mode PgBouncer a session lock means
/// nothing; it is detected before any lock or prepared statement is trusted,
/// on a fresh pool and on a warm one, alone or racing: 78 with the fix.
/// Through a session-mode PgBouncer replicas race as they do directly.
#[test]
fn a_transaction_mode_pgbouncer_is_refused_and_session_mode_works() {
    let pg = Postgres::start();
    pg.create_database("app");
    let transaction = crate::support::db::PgBouncer::start(&pg, "app", "transaction");
    let pooled = transaction.url("app");
    for round in ["fresh pool", "warm pool"] {
        let finished = native(&pooled).run();
        finished.assert_code(78);
        assert!(
            finished.stderr.contains("goes through a transaction-mode pooler")
                && finished.stderr.contains("DIRECT_URL"),
            "{round}: {}",
            finished.stderr
        );
    }
    let mut racing: Vec<Running> = (0..4).map(|_| native(&pooled).start()).collect();
    for replica in &mut racing {
        assert_eq!(replica.wait_exit(secs(60)), 78, "{}", replica.stderr.text());
    }
    assert_eq!(
        pg.sql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE tablename = '_supervisor_migrations'"
        ),
        "0",
        "nothing may be applied through the pooler"
    );

    let session = crate::support::db::PgBouncer::start(&pg, "app", "session");
    let mut racing: Vec<Running> = (0..4).map(|_| native(&session.url("app")).start()).collect();
    for replica in &mut racing {
        assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    }
    assert_eq!(pg.sql("app", "SELECT count(*) FROM _supervisor_migrations"), "3");
    assert_eq!(pg.sql("app", "SELECT count(*) FROM users"), "1", "2_slow.sql ran once");
}

#[test]
fn unreachable_and_refused_databases_exit_69_without_the_password() {
    let pg = Postgres::start();
    let missing_db = format!("postgres://postgres:CANARY-pw@127.0.0.1:{}/nope", pg.port);
    let finished = native(&missing_db).run();
    finished.assert_code(69);
    assert!(
        finished
            .stderr
            .contains("cannot connect to postgres://postgres@127.0.0.1"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("does not exist"), "{}", finished.stderr);
    assert!(!finished.stderr.contains("CANARY"), "{}", finished.stderr);
    pg.stop_server("fast");
    let finished = replica(
        &missing_db,
        "dir = \"migrations\"\nconnect_timeout = \"1s\"",
        &MIGRATIONS,
    )
    .run();
    finished.assert_code(69);
    assert!(
        finished.stderr.contains("is not reachable after"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("CANARY"), "{}", finished.stderr);
}

#[test]
fn a_server_restart_mid_migration_leaves_history_consistent_and_the_job_finishes() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let files = [
        ("migrations/1_a.sql", "CREATE TABLE a (id int);"),
        ("migrations/2_b.sql", "CREATE TABLE b (id int);\nSELECT pg_sleep(3);"),
    ];
    let mut replica = replica(&url, "dir = \"migrations\"", &files).start();
    replica.wait_stderr("applied migration=1_a", secs(30));
    std::thread::sleep(Duration::from_millis(500));
    pg.stop_server("fast");
    pg.start_server();
    assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    assert!(
        replica
            .stderr
            .text()
            .contains("connection lost during migrations; starting over"),
        "{}",
        replica.stderr.text()
    );
    assert_eq!(
        pg.sql(
            "app",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM _supervisor_migrations"
        ),
        "1,2"
    );
    assert_eq!(
        pg.sql("app", "SELECT count(*) FROM pg_tables WHERE tablename IN ('a', 'b')"),
        "2"
    );
}

#[test]
fn migrate_status_lists_applied_and_pending_without_the_lock() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    replica(&url, "dir = \"migrations\"", &MIGRATIONS[..1])
        .run()
        .assert_code(0);
    let status = replica(&url, "dir = \"migrations\"", &MIGRATIONS)
        .args(["--status"])
        .run();
    status.assert_code(0);
    assert!(status.stdout.contains("applied  1 "), "{}", status.stdout);
    assert!(status.stdout.contains("pending  2 "), "{}", status.stdout);
    assert!(status.stdout.contains("1 applied, 2 pending"), "{}", status.stdout);

    // While another replica holds the lock (a command under it), --status
    // still answers at once; an applied file whose line endings changed
    // shows as changed.
    let mut holder = replica(&url, "command = 'echo holding; sleep 20'", &[]).start();
    holder.wait_stdout("migrate | holding", secs(30));
    let crlf = MIGRATIONS[0].1.replace('\n', "\r\n");
    let started = Instant::now();
    let status = replica(&url, "dir = \"migrations\"", &[(MIGRATIONS[0].0, crlf.as_str())])
        .args(["--status"])
        .run();
    status.assert_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "--status waited for the lock"
    );
    assert!(
        status.stdout.contains("applied  1 ") && status.stdout.contains("(CHANGED since it was applied)"),
        "{}",
        status.stdout
    );
    holder.signal("TERM");
    assert_eq!(holder.wait_exit(secs(15)), 143, "{}", holder.stderr.text());

    // Command mode: whether the fingerprint matches, and when the command last succeeded.
    let command = "command = 'echo migrating'\nfingerprint = [\"prisma/migrations/**\"]";
    let files = [("prisma/migrations/1/migration.sql", "select 1;")];
    let before = replica(&url, command, &files).args(["--status"]).run();
    before.assert_code(0);
    assert!(
        before
            .stdout
            .contains("no fingerprint recorded: it would run; never recorded as succeeded"),
        "{}",
        before.stdout
    );
    replica(&url, command, &files).run().assert_code(0);
    let after = replica(&url, command, &files).args(["--status"]).run();
    assert!(
        after
            .stdout
            .contains("fingerprint matches: it would be skipped; last succeeded 20"),
        "{}",
        after.stdout
    );
    let changed = [("prisma/migrations/1/migration.sql", "select 2;")];
    let changed = replica(&url, command, &changed).args(["--status"]).run();
    assert!(
        changed.stdout.contains("fingerprint changed: it would run"),
        "{}",
        changed.stdout
    );
}

#[test]
fn run_migrates_then_runs_tasks_by_context_then_starts_processes() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let finished = Test::new()
        .config(
            r#"
[migrate]
dir = "migrations"

[task.seed]
command = '''psql -X -tA -d "$DATABASE_URL" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted" -c "SELECT 'users:' || count(*) FROM users"; echo seeding'''
contexts = ["staging"]
under_lock = true

[task.warm]
command = "echo warming"

[task.prod-only]
command = "echo never-in-staging"
contexts = ["production"]

[process.app]
command = "echo app-up"
restart = "never"
"#,
        )
        .file(MIGRATIONS[0].0, MIGRATIONS[0].1)
        .env("DATABASE_URL", &url)
        .args(["run", "--context", "staging"])
        .run();
    finished.assert_code(0);
    let out = &finished.stdout;
    // The seed ran holding the lock (one advisory lock granted: ours), after
    // the migrations (their table exists), before the free tasks.
    assert!(out.contains("task.seed | 1\ntask.seed | users:0\n"), "{out}");
    assert_before(out, "task.seed | seeding", "task.warm | warming");
    assert_before(out, "task.warm | warming", "app.0 | app-up");
    assert!(!out.contains("never-in-staging"));
    assert!(
        finished.stderr.contains("Applied 1 migration(s): 1_users"),
        "{}",
        finished.stderr
    );
}

#[test]
fn mariadb_replicas_race_once_and_lock_timeout_names_the_holder() {
    let db = MariaDb::start();
    let url = db.create_database("shop");
    let files = [
        (
            "migrations/1_items.sql",
            "CREATE TABLE items (id int PRIMARY KEY, name varchar(50));",
        ),
        (
            "migrations/2_seed.sql",
            "INSERT INTO items VALUES (1, 'a'); DO SLEEP(1);",
        ),
    ];
    let mut replicas: Vec<Running> = (0..8)
        .map(|_| replica(&url, "dir = \"migrations\"", &files).start())
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(60)), 0, "{}", replica.stderr.text());
    }
    let appliers = replicas
        .iter()
        .filter(|r| r.stderr.text().contains("Applied 2 migration(s)"))
        .count();
    assert_eq!(appliers, 1);
    assert_eq!(db.sql("shop", "SELECT COUNT(*) FROM items"), "1");
    assert_eq!(
        db.sql(
            "shop",
            "SELECT GROUP_CONCAT(version ORDER BY version) FROM _supervisor_migrations"
        ),
        "1,2"
    );

    let mut holder = replica(&url, "command = 'echo holding; sleep 5'", &[]).start();
    holder.wait_stdout("migrate | holding", secs(30));
    let finished = replica(&url, "command = 'echo never'\nlock_timeout = \"1s\"", &[]).run();
    finished.assert_code(69);
    assert!(finished.stderr.contains("held by connection"), "{}", finished.stderr);
    assert_eq!(holder.wait_exit(secs(30)), 0);
}

#[test]
fn a_lost_lock_stops_the_command_and_exits_69() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let mut holder = replica(&url, "command = 'echo holding; sleep 30.25'", &[]).start();
    holder.wait_stdout("migrate | holding", secs(30));
    // An operator (or idle_session_timeout) ends the lock session.
    pg.sql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'supervisor@%'",
    );
    let lost_at = Instant::now();
    assert_eq!(holder.wait_exit(secs(20)), 69, "{}", holder.stderr.text());
    assert!(
        lost_at.elapsed() < Duration::from_secs(10),
        "noticed after {:?}",
        lost_at.elapsed()
    );
    let stderr = holder.stderr.text();
    assert!(
        stderr.contains("the migration lock was lost while the migration command ran"),
        "{stderr}"
    );
    // Its command is gone with it, not left running as an orphan.
    let left = crate::support::processes_mentioning("sleep 30.25");
    assert!(left.is_empty(), "the command outlived the lock: {left:?}");
}
