//! SPEC §6: child output, whole lines, prefixed or JSON.

use std::collections::HashMap;

use crate::support::{secs, Test};

#[test]
fn two_children_flooding_fifty_thousand_lines_each_arrive_complete_and_whole() {
    // `seq` writes through stdio in 4 KiB blocks, so lines are cut mid-way by
    // every write: the relay must put them back together.
    let pad = "x".repeat(80);
    let config = format!(
        "[process.a]\ncommand = 'seq -f \"a-%g-{pad}\" 1 50000'\nrestart = \"never\"\n\
         [process.b]\ncommand = 'seq -f \"b-%g-{pad}\" 1 50000'\nrestart = \"never\"\n"
    );
    let finished = Test::new().config(&config).args(["run"]).pid1().run();
    finished.assert_code(0);
    let mut next: HashMap<&str, u64> = HashMap::from([("a", 1), ("b", 1)]);
    for line in finished.stdout.lines() {
        let (prefix, message) = line
            .split_once(" | ")
            .unwrap_or_else(|| panic!("unprefixed line: {line:?}"));
        let name = prefix
            .strip_suffix(".0")
            .unwrap_or_else(|| panic!("bad prefix: {line:?}"));
        let mut parts = message.splitn(3, '-');
        assert_eq!(parts.next(), Some(name), "line from another process: {line:?}");
        let number: u64 = parts
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("torn: {line:?}"));
        assert_eq!(parts.next(), Some(pad.as_str()), "torn: {line:?}");
        let expected = next.get_mut(name).expect("known process");
        assert_eq!(number, *expected, "lost or reordered around {line:?}");
        *expected += 1;
    }
    assert_eq!(next["a"], 50_001);
    assert_eq!(next["b"], 50_001);
}

#[test]
fn stdout_stays_stdout_and_stderr_stays_stderr() {
    let finished = Test::new()
        .config("[process.app]\ncommand = 'echo to-out; echo to-err >&2'\nrestart = \"never\"\n")
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("app.0 | to-out"));
    assert!(!finished.stdout.contains("to-err"));
    assert!(finished.stderr.contains("app.0 | to-err"));
    assert!(!finished.stderr.contains("to-out"));
}

#[test]
fn a_line_longer_than_the_buffer_is_split_never_dropped() {
    let finished = Test::new()
        .config("[process.long]\ncommand = 'head -c 200000 /dev/zero | tr \"\\\\0\" y; echo; printf tail'\nrestart = \"never\"\n")
        .args(["run"])
        .run();
    finished.assert_code(0);
    let pieces: Vec<&str> = finished
        .stdout
        .lines()
        .map(|l| l.strip_prefix("long.0 | ").expect("prefixed"))
        .collect();
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    let joined: String = pieces[..pieces.len() - 1].concat();
    assert_eq!(joined.len(), 200_000);
    assert!(joined.bytes().all(|b| b == b'y'));
    // A last line without a newline is still written.
    assert_eq!(pieces.last(), Some(&"tail"));
}

#[test]
fn json_lines_carry_process_instance_stream_and_message() {
    let finished = Test::new()
        .config("[process.api]\ncommand = 'echo \"hello \\\"world\\\"\"; echo oops >&2'\nrestart = \"never\"\ninstances = 2\n")
        .env("SUPERVISOR_LOG_FORMAT", "json")
        .args(["run"])
        .run();
    finished.assert_code(0);
    let records = json_lines(&finished.stdout);
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record["process"], "api");
        assert_eq!(record["stream"], "stdout");
        assert_eq!(record["message"], "hello \"world\"");
        assert!(record["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    }
    let mut instances: Vec<i64> = records
        .iter()
        .map(|r| r["instance"].as_i64().expect("instance"))
        .collect();
    instances.sort();
    assert_eq!(instances, [0, 1]);
    // Our own events are JSON too, on stderr, next to the children's stderr lines.
    let stderr_records = json_lines(&finished.stderr);
    assert!(stderr_records
        .iter()
        .any(|r| r["stream"] == "stderr" && r["message"] == "oops"));
    assert!(stderr_records.iter().any(|r| r["message"] == "started"));
}

#[test]
fn raw_mode_writes_straight_through() {
    let mut run = Test::new()
        .config("[process.app]\ncommand = 'echo untouched; sleep 1000'\nlog = \"raw\"\n")
        .args(["run"])
        .start();
    let stdout = run.stdout.wait_until(secs(10), "raw line", |t| t.contains("untouched"));
    assert!(stdout.lines().any(|l| l == "untouched"), "{stdout}");
    run.assert_stops_cleanly(secs(10));
}

/// SPEC §6, issue 14: in JSON mode every line we write is JSON, fatal errors
/// included; a child's own JSON line (pino) is embedded as an object, not an
/// escaped string; a CRLF line loses its `\r` (in both formats).
#[test]
fn json_mode_embeds_json_lines_drops_cr_and_reports_fatal_errors_as_json() {
    let config = "[process.api]\ncommand = 'printf \"%s\\\\n\" \"{\\\"level\\\":30,\\\"msg\\\":\\\"listening\\\"}\"; printf \"crlf line\\\\r\\\\n\"; echo \"{not json\"'\nrestart = \"never\"\n";
    let finished = Test::new()
        .config(config)
        .env("SUPERVISOR_LOG_FORMAT", "json")
        .args(["run"])
        .run();
    finished.assert_code(0);
    let records = json_lines(&finished.stdout);
    assert_eq!(records.len(), 3, "{}", finished.stdout);
    assert_eq!(records[0]["message"]["level"], 30, "{}", finished.stdout);
    assert_eq!(records[0]["message"]["msg"], "listening");
    assert_eq!(records[1]["message"], "crlf line");
    assert_eq!(records[2]["message"], "{not json");
    let text = Test::new().config(config).args(["run"]).run();
    assert!(text.stdout.contains("api.0 | crlf line\n"), "{:?}", text.stdout);

    // A fatal error: one JSON object, with the message and the exit code.
    let fatal = Test::new()
        .config("[process.api]\ncommand = \"true\"\nstop_timout = \"5s\"\n")
        .env("SUPERVISOR_LOG_FORMAT", "json")
        .args(["run"])
        .run();
    fatal.assert_code(78);
    let last = fatal.stderr.lines().last().expect("an error line");
    let record: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON: {last:?}: {e}"));
    assert_eq!(record["level"], "ERROR");
    assert_eq!(record["exit_code"], 78);
    assert!(
        record["message"].as_str().is_some_and(|m| m.contains("stop_timout")),
        "{record}"
    );
    for line in fatal.stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line:?}"
        );
    }
}

/// Issue 14: prefixes are padded to the widest `name.N` of the run, so the
/// `|` line up (the only test that reads the padding: the harness takes it out).
#[test]
fn prefixes_line_up() {
    let mut run = Test::new()
        .config("[process.web]\ncommand = \"echo hello\"\nrestart = \"never\"\n[process.worker]\ncommand = \"echo working\"\nrestart = \"never\"\ninstances = 2\n")
        .args(["run"])
        .start();
    assert_eq!(run.wait_exit(crate::support::secs(10)), 0);
    let raw = run.stdout.raw();
    assert!(raw.contains("web.0    | hello\n"), "{raw:?}");
    assert!(raw.contains("worker.1 | working\n"), "{raw:?}");
}

/// Every line as JSON; a line that is not JSON fails the test, naming it.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}")))
        .collect()
}
