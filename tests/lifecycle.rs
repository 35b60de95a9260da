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

/// SPEC §2 (issue 14): `port` gives instance i `PORT` = port + i, and
/// `${SUPERVISOR_INSTANCE}` and `${PORT}` work in `env` values and in probe
/// targets, so each instance's probe checks its own port. Only the second
/// instance's port listens here: only it may become ready.
#[test]
fn each_instance_gets_its_own_port_and_its_probe_follows_it() {
    let (base, _second) = loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("address").port();
        drop(first);
        if let Ok(second) = std::net::TcpListener::bind(("127.0.0.1", port + 1)) {
            break (port, second);
        }
    };
    let mut run = Test::new()
        .config(
            r#"
[process.api]
command = 'echo "instance $SUPERVISOR_INSTANCE on $PORT as $WORKER"; sleep 1000'
instances = 2
port = "${BASE_PORT}"
env = { WORKER = "w-${SUPERVISOR_INSTANCE}-${PORT}" }
ready = { tcp = "127.0.0.1:${PORT}", interval = "100ms" }
"#,
        )
        .env("BASE_PORT", &base.to_string())
        .args(["run"])
        .start();
    let address = run.health_address();
    run.wait_stdout(&format!("api.0 | instance 0 on {base} as w-0-{base}"), secs(10));
    run.wait_stdout(
        &format!("api.1 | instance 1 on {} as w-1-{}", base + 1, base + 1),
        secs(10),
    );
    let health = crate::support::wait_health(&address, secs(10), "api.1 ready", |_, json| {
        json["processes"][1]["ready"] == true
    });
    assert_eq!(
        health["processes"][0]["ready"], false,
        "api.0's probe checked another port: {health}"
    );
    run.assert_stops_cleanly(secs(10));

    let both = Test::new()
        .config("[process.api]\ncommand = \"true\"\nport = 4000\nenv = { PORT = \"4001\" }\n")
        .args(["run"])
        .run();
    both.assert_code(78);
    assert!(
        both.stderr
            .contains("process.api.port: and env.PORT both set the port: keep one"),
        "{}",
        both.stderr
    );
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
