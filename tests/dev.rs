//! SPEC §2, the dev loop: `watch`, `ready = { log = … }`, `--only` /
//! `--except`, the start summary. Real files, real inotify, the real binary.

use crate::support::{assert_before, secs, wait_health, Test};

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn a_file_edit_restarts_only_the_watched_process_and_is_not_counted() {
    let mut run = Test::new()
        .file("src/app.js", "1")
        .config(
            "[process.api]\ncommand = \"echo api up; while :; do sleep 0.05; done\"\nwatch = [\"src/**\"]\n\
             [process.web]\ncommand = \"echo web up; while :; do sleep 0.05; done\"\n",
        )
        .args(["run"])
        .start();
    let address = run.health_address();
    run.stdout
        .wait_until(secs(10), "both up", |t| t.contains("api up") && t.contains("web up"));
    std::fs::write(run.dir().join("src/app.js"), "2").expect("edit");
    run.stdout
        .wait_until(secs(10), "api restarted", |t| count(t, "api up") == 2);
    run.wait_stderr("files changed: restarting process=api", secs(5));
    let health = wait_health(&address, secs(10), "ok", |code, _| code == 200);
    assert_eq!(health["processes"][0]["restarts"], 0, "a watch restart is not counted");
    assert_eq!(count(&run.stdout.text(), "web up"), 1, "web does not watch src/");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_burst_of_a_hundred_writes_is_one_restart_and_ignored_paths_are_none() {
    let mut run = Test::new()
        .env("SUPERVISOR_LOG_LEVEL", "debug")
        .file("src/keep", "")
        .file("src/node_modules/keep", "")
        .file("src/dist/keep", "")
        .config(
            "[process.api]\ncommand = \"echo api up; while :; do sleep 0.05; done\"\nwatch = [\"src/**\"]\nwatch_ignore = [\"**/*.log\"]\n",
        )
        .args(["run"])
        .start();
    run.stdout.wait_until(secs(10), "up", |t| t.contains("api up"));
    // `git checkout` of a hundred files.
    for i in 0..100 {
        std::fs::write(run.dir().join(format!("src/file{i}.js")), format!("{i}")).expect("write");
    }
    run.stdout
        .wait_until(secs(10), "one restart", |t| count(t, "api up") == 2);
    run.wait_stderr("files changed: restarting", secs(5));
    // Build output and ignored files: the watcher sees them and restarts nothing.
    let seen = count(&run.stderr.text(), "restart nothing");
    std::fs::write(run.dir().join("src/node_modules/pkg.js"), "x").expect("write");
    std::fs::write(run.dir().join("src/dist/bundle.js"), "x").expect("write");
    std::fs::write(run.dir().join("src/debug.log"), "x").expect("write");
    run.stderr
        .wait_until(secs(10), "the ignored batch", |t| count(t, "restart nothing") > seen);
    let text = run.stdout.text();
    assert_eq!(count(&text, "api up"), 2, "{text}");
    assert_eq!(count(&run.stderr.text(), "files changed: restarting"), 1);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_crashed_process_is_started_again_by_the_next_change() {
    let mut run = Test::new()
        .file("src/app.js", "1")
        .config(
            "[process.api]\ncommand = \"echo api up; [ -e src/fixed ] || exit 3; while :; do sleep 0.05; done\"\n\
             watch = [\"src/**\"]\nrestart = \"never\"\ncritical = false\n\
             [process.web]\ncommand = \"sleep 1000\"\n",
        )
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(10), "api failed", |_, json| {
        json["processes"][0]["state"] == "failed"
    });
    std::fs::write(run.dir().join("src/fixed"), "").expect("fix it");
    wait_health(&address, secs(10), "api back", |code, json| {
        code == 200 && json["processes"][0]["state"] == "running"
    });
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_log_line_makes_a_process_ready_and_gates_its_dependents() {
    let mut run = Test::new()
        .config(
            "[process.api]\ncommand = \"sleep 0.3; echo 'booting' >&2; echo '  ✓ Ready in 1.2s' >&2; sleep 1000\"\n\
             ready = { log = \"Ready in [0-9.]+s\" }\n\
             [process.quiet]\ncommand = \"echo 'Ready in 1s' >&2; sleep 1000\"\n\
             ready = { log = \"Ready in\", stream = \"stdout\" }\ncritical = false\n\
             [process.web]\ncommand = \"echo web up; sleep 1000\"\ndepends_on = [\"api\"]\n",
        )
        .args(["run"])
        .start();
    let address = run.health_address();
    run.stdout.wait_until(secs(10), "web up", |t| t.contains("web up"));
    let stderr = run.stderr.text();
    assert_before(&stderr, "ready process=api", "started process=web");
    // The line on stderr does not count for a stdout-only check.
    let health = wait_health(&address, secs(5), "status", |_, json| {
        json["processes"][2]["state"] == "running"
    });
    assert_eq!(health["processes"][1]["name"], "quiet");
    assert_eq!(health["processes"][1]["ready"], false, "{health}");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn only_starts_the_dependencies_it_needs_and_except_leaves_one_out() {
    let config = "[process.db]\ncommand = \"echo db up; sleep 1000\"\n\
                  [process.api]\ncommand = \"echo api up; sleep 1000\"\ndepends_on = [\"db\"]\n\
                  [process.web]\ncommand = \"echo web up; sleep 1000\"\ndepends_on = [\"api\"]\n\
                  [process.bot]\ncommand = \"echo bot up; sleep 1000\"\n";
    let mut only = Test::new().config(config).args(["run", "--only", "web"]).start();
    only.stdout.wait_until(secs(10), "the closure", |t| {
        t.contains("db up") && t.contains("api up") && t.contains("web up")
    });
    // The summary line says when each was ready.
    only.wait_stderr("web ready in", secs(5));
    only.assert_stops_cleanly(secs(10));
    assert!(!only.stdout.text().contains("bot up"));
    assert!(!only.stderr.text().contains("process=bot"));

    let mut except = Test::new().config(config).args(["run", "--except", "bot,web"]).start();
    except
        .stdout
        .wait_until(secs(10), "db and api", |t| t.contains("db up") && t.contains("api up"));
    except.assert_stops_cleanly(secs(10));
    assert!(!except.stdout.text().contains("bot up") && !except.stdout.text().contains("web up"));

    let refused = Test::new().config(config).args(["run", "--except", "db"]).run();
    refused.assert_code(64);
    assert!(
        refused
            .stderr
            .contains("--except db: api depends on it; leave api out too"),
        "{}",
        refused.stderr
    );
    let unknown = Test::new().config(config).args(["run", "--only", "wbe"]).run();
    unknown.assert_code(64);
    assert!(
        unknown.stderr.contains("--only: no process named \"wbe\""),
        "{}",
        unknown.stderr
    );
}

#[test]
fn prefix_colours_follow_the_process_name_not_its_place() {
    use supervisor::logs::lines::colour_of;
    // Adding a process before `web` does not repaint it.
    assert_eq!(colour_of("web"), colour_of("web"));
    let names = ["api", "web", "bot", "worker", "db", "cache", "tunnel", "assets"];
    let colours: std::collections::BTreeSet<usize> = names.iter().map(|n| colour_of(n)).collect();
    assert!(colours.len() >= 3, "names spread over the colours: {colours:?}");
}
