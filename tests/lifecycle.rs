//! SPEC §1: finding the config, instances, the children's environment.

use crate::support::{secs, Test};

#[test]
fn a_procfile_is_used_when_there_is_no_supervisor_toml() {
    let mut run = Test::new()
        .file(
            "Procfile",
            "# dev processes\nweb: echo web-up; sleep 1000\nworker: echo worker-up; sleep 1000\n",
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("web.0 | web-up", secs(10));
    run.wait_stdout("worker.0 | worker-up", secs(10));
    run.assert_stops_cleanly(secs(10));
}

/// SPEC §1 step 1, issue 14: in Procfile mode `.env` is read (a variable of
/// the real environment wins), and `release:` is a one-shot step run once,
/// before the others, never restarted.
#[test]
fn a_procfile_reads_dot_env_and_runs_release_once_first() {
    let mut run = Test::new()
        .file(
            "Procfile",
            "release: echo \"migrating with $DATABASE_URL\"\nweb: echo \"web on $PORT for $APP_ENV\"; sleep 1000\n",
        )
        .file(
            ".env",
            "PORT=5000\nDATABASE_URL=postgres://db/app\nAPP_ENV=from-dotenv\n",
        )
        .env("APP_ENV", "from-environment")
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("web.0 | web on 5000 for from-environment", secs(10));
    run.assert_stops_cleanly(secs(10));
    let stdout = run.stdout.text();
    assert_eq!(
        stdout
            .matches("task.release | migrating with postgres://db/app")
            .count(),
        1,
        "{stdout}"
    );
    crate::support::assert_before(&stdout, "task.release | migrating", "web.0 | web on");
    let stderr = run.stderr.text();
    assert!(
        !stderr.contains("process=release"),
        "release is not a process: {stderr}"
    );
}

#[test]
fn supervisor_toml_wins_over_a_procfile_and_config_flag_wins_over_both() {
    let finished = Test::new()
        .file("Procfile", "web: echo from-procfile\n")
        .config("[process.web]\ncommand = \"echo from-toml\"\nrestart = \"never\"\n")
        .file(
            "other.toml",
            "[process.web]\ncommand = \"echo from-flag\"\nrestart = \"never\"\n",
        )
        .args(["run"])
        .run();
    assert!(finished.stdout.contains("from-toml"), "{}", finished.stdout);
    assert!(!finished.stdout.contains("from-procfile"), "{}", finished.stdout);
    let finished = Test::new()
        .config("[process.web]\ncommand = \"echo from-toml\"\nrestart = \"never\"\n")
        .file(
            "other.toml",
            "[process.web]\ncommand = \"echo from-flag\"\nrestart = \"never\"\n",
        )
        .args(["run", "--config", "other.toml"])
        .run();
    assert!(finished.stdout.contains("from-flag"), "{}", finished.stdout);
    assert!(!finished.stdout.contains("from-toml"), "{}", finished.stdout);
    let finished = Test::new()
        .file(
            "other.toml",
            "[process.web]\ncommand = \"echo from-variable\"\nrestart = \"never\"\n",
        )
        .env("SUPERVISOR_CONFIG", "other.toml")
        .args(["run"])
        .run();
    assert!(finished.stdout.contains("from-variable"), "{}", finished.stdout);
}

#[test]
fn instances_env_interpolation_and_identity_variables() {
    let finished = Test::new()
        .config(
            r#"
[process.api]
command = 'echo "$SUPERVISOR_PROCESS/$SUPERVISOR_INSTANCE port=$PORT url=$URL"'
instances = "${WORKERS:-1}"
env = { PORT = "40${SUPERVISOR_TEST_SUFFIX}", URL = "${MISSING_URL:-http://fallback}" }
restart = "never"
cwd = "apps/api"
"#,
        )
        .file("apps/api/.keep", "")
        .env("WORKERS", "3")
        .env("SUPERVISOR_TEST_SUFFIX", "01")
        .args(["run"])
        .run();
    finished.assert_code(0);
    for i in 0..3 {
        assert!(
            finished
                .stdout
                .contains(&format!("api.{i} | api/{i} port=4001 url=http://fallback")),
            "{}",
            finished.stdout
        );
    }
}

#[test]
fn a_missing_cwd_is_a_failure_naming_the_directory() {
    let finished = Test::new()
        .config("[process.api]\ncommand = \"true\"\ncwd = \"does/not/exist\"\nrestart = \"never\"\n")
        .args(["run"])
        .run();
    finished.assert_code(127);
    assert!(
        finished.stderr.contains("does/not/exist is not a directory"),
        "{}",
        finished.stderr
    );
}
