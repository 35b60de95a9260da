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
    let finished = Test::new()
        .config("[process.web]\ncommand = \"echo from-toml\"\nrestart = \"never\"\n")
        .file(
            "other.toml",
            "[process.web]\ncommand = \"echo from-flag\"\nrestart = \"never\"\n",
        )
        .args(["run", "--config", "other.toml"])
        .run();
    assert!(finished.stdout.contains("from-flag"), "{}", finished.stdout);
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
