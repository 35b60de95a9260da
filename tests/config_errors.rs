//! SPEC §2: every config error exits 78 and names the file, the key and the line.
//! These tests pin the wording users see.

use crate::support::Test;

fn errors(config: &str) -> String {
    let finished = Test::new().config(config).args(["run"]).run();
    finished.assert_code(78);
    assert!(finished.stdout.is_empty(), "nothing may start: {}", finished.stdout);
    finished.stderr
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let stderr = errors("[process.web]\ncommand = \"x\"\nstop_timout = \"5s\"\n");
    assert!(
        stderr.starts_with("error: supervisor.toml:3: process.web.stop_timout: unknown key (expected one of"),
        "{stderr}"
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let stderr = errors("[process.web]\ncommand = \"x\"\nrestart = \n");
    assert!(stderr.starts_with("error: supervisor.toml:3: "), "{stderr}");
}

#[test]
fn every_value_problem_is_reported_at_once() {
    let stderr = errors(
        r#"[process.web]
command = "x"
stop_timeout = "soon"
stop_signal = "SIGNOPE"
depends_on = ["db"]
user = "no-such-user-anywhere"

[process.worker]
command = ["sleep", "1"]
restart_window = "forever"
"#,
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "error: supervisor.toml:3: process.web.stop_timeout: invalid duration \"soon\" (expected e.g. \"500ms\", \"5s\", \"15m\")",
            "error: supervisor.toml:4: process.web.stop_signal: unknown signal \"SIGNOPE\" (expected e.g. \"SIGTERM\", \"SIGINT\", \"SIGQUIT\")",
            "error: supervisor.toml:5: process.web.depends_on: unknown process \"db\"",
            "error: supervisor.toml:6: process.web.user: user \"no-such-user-anywhere\" does not exist on this system",
            "error: supervisor.toml:10: process.worker.restart_window: invalid duration \"forever\" (expected e.g. \"500ms\", \"5s\", \"15m\")",
        ]
    );
}

/// Issue 14: unknown keys, wrong types and bad enum values came one per
/// run; now every one at once, with their lines, in plain words, together
/// with the value problems found after them.
#[test]
fn unknown_keys_wrong_types_and_bad_values_are_all_reported_at_once() {
    let stderr = errors(
        r#"[process.web]
command = "x"
stop_timout = "5s"
restart = "alway"
max_restarts = "ten"
stop_timeout = 5

[process.worker]
command = ["sleep", "1"]
colour = "blue"
restart_window = "forever"
"#,
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        "error: supervisor.toml:3: process.web.stop_timout: unknown key",
        "error: supervisor.toml:4: process.web.restart: \"alway\" is not one of",
        "error: supervisor.toml:5: process.web.max_restarts: expected a whole number, found string \"ten\"",
        "error: supervisor.toml:6: process.web.stop_timeout: expected a duration such as \"5s\" or \"500ms\", found integer `5` (a number alone has no unit)",
        "error: supervisor.toml:10: process.worker.colour: unknown key",
        "error: supervisor.toml:11: process.worker.restart_window: invalid duration \"forever\"",
    ];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, expected) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(expected),
            "{line}\n  does not start with\n{expected}\n{stderr}"
        );
    }
}

#[test]
fn a_dependency_cycle_is_named() {
    let stderr = errors(
        "[process.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[process.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
    );
    assert_eq!(
        stderr.trim(),
        "error: supervisor.toml:3: process.a.depends_on: dependency cycle: a -> b -> a"
    );
}

#[test]
fn an_unset_variable_in_instances_is_a_config_error() {
    let stderr = errors("[process.api]\ncommand = \"x\"\ninstances = \"${WORKERS_THAT_ARE_NOT_SET}\"\n");
    assert!(
        stderr.contains("supervisor.toml:3: process.api.instances: variable WORKERS_THAT_ARE_NOT_SET is not set"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let finished = Test::new().args(["run", "--config", "nope.toml"]).run();
    finished.assert_code(78);
    assert!(
        finished.stderr.starts_with("error: nope.toml: cannot read the config"),
        "{}",
        finished.stderr
    );
}

#[test]
fn no_config_at_all_says_where_it_looked() {
    let finished = Test::new().args(["run"]).run();
    finished.assert_code(78);
    assert!(
        finished.stderr.contains("no supervisor.toml or Procfile in"),
        "{}",
        finished.stderr
    );
}

#[test]
fn a_bad_procfile_line_is_named_without_its_text() {
    let finished = Test::new()
        .file(
            "Procfile",
            "web: sleep 1\nthis line has a secret-token-123 and no colon\n",
        )
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert_eq!(finished.stderr.trim(), "error: Procfile:2: expected `name: command`");
}

#[test]
fn a_bad_setting_is_named_without_its_value() {
    let finished = Test::new()
        .config("[process.a]\ncommand = \"true\"\n")
        .env("SUPERVISOR_LOG_FORMAT", "hunter2")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert_eq!(
        finished.stderr.trim(),
        "error: SUPERVISOR_LOG_FORMAT: must be \"text\" or \"json\""
    );
}

#[test]
fn a_log_level_that_is_not_a_level_is_refused_rather_than_silencing_us() {
    // "verbose" would parse as a target name and filter out every event of ours.
    for level in ["verbose", "supervisor=loud"] {
        let finished = Test::new()
            .config("[process.a]\ncommand = \"true\"\nrestart = \"never\"\n")
            .env("SUPERVISOR_LOG_LEVEL", level)
            .args(["run"])
            .run();
        finished.assert_code(78);
        assert!(
            finished
                .stderr
                .starts_with("error: SUPERVISOR_LOG_LEVEL: not a log level"),
            "{}",
            finished.stderr
        );
        assert!(!finished.stderr.contains(level), "{}", finished.stderr);
    }
    let debug = Test::new()
        .config("[process.a]\ncommand = \"true\"\nrestart = \"never\"\n")
        .env("SUPERVISOR_LOG_LEVEL", "warn,supervisor=trace")
        .args(["run"])
        .run();
    debug.assert_code(0);
    assert!(debug.stderr.contains("TRACE"), "{}", debug.stderr);
}

/// Issue 13, bug 5: a task's `user` is checked like a process's: 78 before
/// anything runs (it used to exit 127, "cannot start").
#[test]
fn a_task_with_an_unknown_user_is_a_config_error() {
    let stderr = errors(
        "[task.seed]\ncommand = \"echo seeding\"\nuser = \"no-such-user-here\"\n\n[process.app]\ncommand = \"true\"\n",
    );
    assert!(
        stderr.contains("task.seed.user: user \"no-such-user-here\" does not exist on this system"),
        "{stderr}"
    );
}
