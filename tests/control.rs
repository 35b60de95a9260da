//! SPEC §9: `supervisor status|restart|stop|start|signal|logs` against a
//! running `supervisor run`, over its control socket, found without flags.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{http, secs, wait_health, wait_lines, Running, Test, BIN};

/// A client command run from the supervisor's own folder, as an operator would.
fn client(run: &Running, args: &[&str]) -> Output {
    client_in(&run.dir(), args, &[])
}

fn client_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SUPERVISOR_CONFIG")
        .env_remove("SUPERVISOR_CONTROL_SOCKET")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run the client")
}

fn text(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn status_json(run: &Running) -> serde_json::Value {
    let output = client(run, &["status", "--json"]);
    let (code, stdout, stderr) = text(&output);
    assert_eq!(code, 0, "status: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("status --json: {err}: {stdout}"))
}

fn pid_of(status: &serde_json::Value, name: &str, instance: u64) -> Option<i64> {
    status["processes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name && p["instance"] == instance)?["pid"]
        .as_i64()
}

/// Each run of a process appends `start PID` when its TERM trap is set and
/// `end PID` when it gets TERM, to `runs` in the test folder.
fn recorded(name: &str) -> String {
    format!(
        "[process.{name}]\ncommand = \"trap 'echo end {name} $$ >> runs; exit 0' TERM; echo start {name} $$ >> runs; while :; do sleep 0.02; done\"\n"
    )
}

fn socket_of(run: &Running) -> std::path::PathBuf {
    let stderr = run.wait_stderr("control socket listening", secs(10));
    let line = stderr
        .lines()
        .find(|l| l.contains("control socket listening"))
        .expect("line");
    let path = line
        .split("socket=")
        .nth(1)
        .expect("socket=")
        .split_whitespace()
        .next()
        .expect("path");
    std::path::PathBuf::from(path)
}

#[test]
fn status_restart_stop_start_and_signal_from_the_project_folder() {
    let config = format!(
        "{}{}[process.web]\ncommand = \"trap 'echo got HUP' HUP; echo web ready; while :; do sleep 0.02; done\"\ninstances = 2\n",
        recorded("api"),
        ""
    );
    let mut run = Test::new().config(&config).args(["run"]).start();
    let address = run.health_address();
    wait_health(&address, secs(10), "ok", |code, _| code == 200);
    wait_lines(&run.dir().join("runs"), 1, secs(10));

    let (code, table, err) = text(&client(&run, &["status"]));
    assert_eq!(code, 0, "{err}");
    assert!(table.starts_with("supervisor: ok (phase running, up "), "{table}");
    for header in ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "READY"] {
        assert!(table.contains(header), "{table}");
    }
    assert!(table.contains("web.1  running"), "{table}");

    // /health and status agree: the same document.
    let before = status_json(&run);
    let (_, health) = http("GET", &address, "/health");
    let health: serde_json::Value = serde_json::from_str(&health).expect("json");
    assert_eq!(before["processes"].as_array().map(Vec::len), Some(3));
    assert_eq!(pid_of(&before, "api", 0), pid_of(&health, "api", 0));
    assert!(before["processes"][0]["uptime_seconds"].as_f64().is_some());

    // restart: a new pid, the old run stopped gracefully, not counted as a restart.
    let old = pid_of(&before, "api", 0).expect("api pid");
    let (code, out, err) = text(&client(&run, &["restart", "api"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("restarted api.0 (pid "), "{out}");
    let after = status_json(&run);
    let new = pid_of(&after, "api", 0).expect("a new api pid");
    assert_ne!(old, new);
    assert_eq!(
        after["processes"][0]["restarts"], 0,
        "a manual restart is not a restart of the policy"
    );
    let runs = wait_lines(&run.dir().join("runs"), 3, secs(10));
    assert_eq!(
        runs,
        [
            format!("start api {old}"),
            format!("end api {old}"),
            format!("start api {new}")
        ]
    );

    // stop holds: no restart policy revives it, a later request does not either.
    let (code, out, _) = text(&client(&run, &["stop", "web.1"]));
    assert_eq!((code, out.as_str()), (0, "stopped web.1\n"));
    let (code, _, _) = text(&client(&run, &["restart", "api"]));
    assert_eq!(code, 0);
    let held = status_json(&run);
    assert_eq!(held["processes"][2]["state"], "held", "{held}");
    assert_eq!(held["status"], "degraded");
    let (code, out, _) = text(&client(&run, &["start", "web.1"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("started web.1 (pid "), "{out}");
    assert_eq!(status_json(&run)["processes"][2]["state"], "running");

    // signal: to each instance's group.
    let (code, out, _) = text(&client(&run, &["signal", "HUP", "web"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("sent SIGHUP to web.0 (pid "), "{out}");
    run.stdout
        .wait_until(secs(10), "both webs got HUP", |t| t.matches("got HUP").count() == 2);

    // Refusals name the reason and exit 1.
    let (code, _, err) = text(&client(&run, &["restart", "nope"]));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "supervisor: no process named \"nope\": the processes are api, web\n"
    );
    let (code, _, err) = text(&client(&run, &["stop", "web.7"]));
    assert_eq!(
        (code, err.as_str()),
        (1, "supervisor: web has 2 instance(s): web.0 … web.1\n")
    );
    let (code, _, err) = text(&client(&run, &["signal", "NOPE", "web"]));
    assert_eq!(code, 1);
    assert!(err.contains("unknown signal"), "{err}");

    run.assert_stops_cleanly(secs(10));
    // Gone with us: no stale socket left by a clean exit.
    let (code, _, err) = text(&client_in(
        &run.dir(),
        &["status"],
        &[("SUPERVISOR_CONTROL_SOCKET", "/nonexistent/control.sock")],
    ));
    assert_eq!(code, 69, "{err}");
}

#[test]
fn eight_restarts_at_once_never_make_two_runs_side_by_side() {
    // Ready once its trap is set: a restart answers when the run is ready,
    // so each of the eight finds a run that will record its end.
    let config = format!(
        "{}ready = {{ exec = \"tail -n 1 runs | grep -q '^start'\", interval = \"20ms\" }}\n",
        recorded("web")
    );
    let mut run = Test::new().config(&config).args(["run"]).start();
    wait_lines(&run.dir().join("runs"), 1, secs(10));
    let dir = run.dir();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || text(&client_in(&dir, &["restart", "web"], &[])))
        })
        .collect();
    for client in clients {
        let (code, out, err) = client.join().expect("client");
        assert_eq!(code, 0, "{out}{err}");
    }
    let status = status_json(&run);
    let pid = pid_of(&status, "web", 0).expect("web runs");
    run.assert_stops_cleanly(secs(10));
    let runs = std::fs::read_to_string(dir.join("runs")).expect("runs");
    let lines: Vec<&str> = runs.lines().collect();
    // start, end, start, end…: each run ended before the next began.
    assert_eq!(lines.len(), 2 * 9, "one first run and eight restarts: {runs}");
    for pair in lines.chunks(2) {
        let started = pair[0].strip_prefix("start web ").expect("a start");
        assert_eq!(pair[1], format!("end web {started}"), "{runs}");
    }
    assert_eq!(lines[16], format!("start web {pid}"));
}

#[test]
fn a_restart_of_a_dependency_and_its_dependent_keeps_the_dependency_order() {
    // api is ready once its run has written its own line (its trap is set):
    // without that, web could start, and write first, in the moment between.
    let config = format!(
        "{}ready = {{ exec = \"tail -n 1 runs | grep -q '^start api'\", interval = \"20ms\" }}\n{}depends_on = {{ api = \"ready\" }}\n",
        recorded("api"),
        recorded("web")
    );
    let mut run = Test::new().config(&config).args(["run"]).start();
    wait_lines(&run.dir().join("runs"), 2, secs(10));
    let (code, out, err) = text(&client(&run, &["restart", "api", "web"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("api.0 (pid ") && out.contains("web.0 (pid "), "{out}");
    // The reply comes once both are ready, which without a probe is when
    // spawned: the new runs' own lines may follow a moment later.
    let runs = wait_lines(&run.dir().join("runs"), 6, secs(10)).join("\n");
    let order: Vec<String> = runs
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(order, ["end web", "end api", "start api", "start web"], "{runs}");

    // Restarting api alone leaves web running (it sees api go, as on a crash).
    let web = pid_of(&status_json(&run), "web", 0);
    let (code, _, _) = text(&client(&run, &["restart", "api"]));
    assert_eq!(code, 0);
    assert_eq!(pid_of(&status_json(&run), "web", 0), web);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn the_socket_is_private_a_stale_one_is_replaced_and_a_live_one_never_taken() {
    let test = Test::new().config("[process.web]\ncommand = \"sleep 1000\"\n");
    let dir = test.path();
    // As a namespace's PID 1, so that its SIGKILL takes its children along.
    let mut first = test.pid1().args(["run"]).start();
    let socket = socket_of(&first);
    let mode = std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let folder = std::fs::metadata(socket.parent().expect("folder")).expect("folder");
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);

    // A second supervisor of the same project does not steal it.
    let mut second = Test::new()
        .env("SUPERVISOR_CONFIG", &dir.join("supervisor.toml").display().to_string())
        .args(["run"])
        .start();
    second.wait_stderr("another supervisor runs with this config", secs(10));
    let status = status_json(&first);
    assert!(pid_of(&status, "web", 0).is_some());
    second.signal("INT");
    assert_eq!(second.wait_exit(secs(10)), 0);
    assert!(socket.exists(), "the second one must not remove the first one's socket");

    // SIGKILLed: its socket stays behind, refusing; the next run replaces it.
    first.signal("KILL");
    first.wait_exit(secs(10));
    assert!(socket.exists());
    let mut next = Test::new()
        .env("SUPERVISOR_CONFIG", &dir.join("supervisor.toml").display().to_string())
        .args(["run"])
        .start();
    assert_eq!(socket_of(&next), socket);
    let (code, out, _) = text(&client_in(&dir, &["status"], &[]));
    assert_eq!(code, 0);
    assert!(out.contains("web.0"), "{out}");
    next.assert_stops_cleanly(secs(10));
}

#[test]
fn only_our_own_user_may_control_it_even_through_an_open_socket() {
    // A folder of this test's own (the default one is shared by the parallel tests).
    let folder = tempfile::tempdir().expect("folder");
    let socket = folder.path().join("control.sock");
    let mut run = Test::new()
        .env("SUPERVISOR_CONTROL_SOCKET", &socket.display().to_string())
        .config("[process.web]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    assert_eq!(socket_of(&run), socket);
    assert_eq!(
        std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777,
        0o600
    );
    // Open both the folder and the socket to everyone, as a careless chmod
    // would: the peer's credentials still decide.
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod folder");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let output = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN, "status"])
        .env("SUPERVISOR_CONTROL_SOCKET", &socket)
        .output()
        .expect("setpriv");
    let (code, _, err) = text(&output);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("only the supervisor's own user or root may control it"),
        "{err}"
    );
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn malformed_oversized_and_silent_clients_never_stall_supervision() {
    let mut run = Test::new()
        .config(
            "[process.web]\ncommand = \"sleep 1000\"\n\
             [process.flaky]\ncommand = \"echo flaky up; while [ ! -e crash ]; do sleep 0.02; done; rm crash; exit 1\"\n\
             backoff = { initial = \"10ms\", max = \"10ms\" }\n",
        )
        .args(["run"])
        .start();
    let address = run.health_address();
    let socket = socket_of(&run);
    wait_health(&address, secs(10), "ok", |code, _| code == 200);
    let answer = |request: &[u8]| -> String {
        let mut stream = UnixStream::connect(&socket).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = stream.write_all(request);
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(answer(b"not json\n").contains("malformed request"));
    assert!(answer(b"{\"command\":\"reboot\"}\n").contains("malformed request"));
    assert!(answer(&vec![b'x'; 1 << 20]).contains("longer than"));

    // Twenty clients that connect and say nothing hold every slot.
    let silent: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    let started = Instant::now();
    // Supervision goes on: a crash is restarted, /health answers.
    std::fs::write(run.dir().join("crash"), "").expect("touch crash");
    run.stdout
        .wait_until(secs(10), "flaky restarted", |t| t.matches("flaky up").count() == 2);
    assert_eq!(http("GET", &address, "/livez").0, 200);
    // A client beyond the slots is told so at once, not left hanging.
    let (code, _, err) = text(&client(&run, &["status"]));
    assert!(
        code == 0 || err.contains("too many control connections"),
        "{code} {err}"
    );
    // The silent ones are dropped after 5 s; then status answers again.
    let deadline = Instant::now() + secs(20);
    loop {
        let (code, _, _) = text(&client(&run, &["status"]));
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "status never answered again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() < secs(20));
    drop(silent);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn logs_prints_recent_lines_then_follows() {
    let mut run = Test::new()
        .config(
            "[process.web]\ncommand = \"echo one; echo two; echo three; while [ ! -e more ]; do sleep 0.02; done; echo four; sleep 1000\"\n\
             [process.api]\ncommand = \"echo api line; sleep 1000\"\n",
        )
        .args(["run"])
        .start();
    run.stdout.wait_until(secs(10), "first lines", |t| {
        t.contains("three") && t.contains("api line")
    });
    let (code, out, _) = text(&client(&run, &["logs", "-n", "2", "web"]));
    assert_eq!((code, out.as_str()), (0, "web.0 | two\nweb.0 | three\n"));
    let (_, all, _) = text(&client(&run, &["logs"]));
    assert!(all.contains("api.0 | api line") && all.contains("web.0 | one"), "{all}");

    let mut follower = Command::new(BIN)
        .args(["logs", "-f", "-n", "1", "web"])
        .current_dir(run.dir())
        .env_remove("SUPERVISOR_CONTROL_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let followed = crate::support::Captured::start(follower.stdout.take().expect("stdout"));
    followed.wait_until(secs(10), "the recent line", |t| t.contains("web.0 | three"));
    std::fs::write(run.dir().join("more"), "").expect("touch more");
    followed.wait_until(secs(10), "the new line", |t| t.contains("web.0 | four"));
    crate::support::send(follower.id() as i32, "INT");
    let deadline = Instant::now() + secs(10);
    let status = loop {
        if let Some(status) = follower.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "logs -f did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!followed.text().contains("api.0"), "filtered to web");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn nobody_answering_or_a_socket_turned_off_exits_69() {
    let dir = tempfile::tempdir().expect("dir");
    let (code, _, err) = text(&client_in(
        dir.path(),
        &["status"],
        &[(
            "SUPERVISOR_CONTROL_SOCKET",
            &dir.path().join("none.sock").display().to_string(),
        )],
    ));
    assert_eq!(code, 69);
    assert!(err.contains("no supervisor answers at"), "{err}");

    let mut run = Test::new()
        .env("SUPERVISOR_CONTROL_SOCKET", "off")
        .config("[process.web]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    run.wait_stderr("started", secs(10));
    let (code, _, err) = text(&client_in(
        &run.dir(),
        &["status"],
        &[("SUPERVISOR_CONTROL_SOCKET", "off")],
    ));
    assert_eq!(code, 69);
    assert!(err.contains("the control socket is off"), "{err}");
    assert!(!run.stderr.text().contains("control socket listening"));
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn two_projects_side_by_side_each_reach_their_own_and_a_lone_one_is_found_from_anywhere() {
    // A private runtime folder, so the parallel tests' sockets are not "here".
    let runtime = tempfile::tempdir().expect("runtime dir");
    let xdg = runtime.path().display().to_string();
    let mut a = Test::new()
        .env("XDG_RUNTIME_DIR", &xdg)
        .config("[process.alpha]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    let mut b = Test::new()
        .env("XDG_RUNTIME_DIR", &xdg)
        .config("[process.beta]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    socket_of(&a);
    socket_of(&b);
    let env = [("XDG_RUNTIME_DIR", xdg.as_str())];
    let (_, out_a, _) = text(&client_in(&a.dir(), &["status"], &env));
    let (_, out_b, _) = text(&client_in(&b.dir(), &["status"], &env));
    assert!(out_a.contains("alpha.0") && !out_a.contains("beta"), "{out_a}");
    assert!(out_b.contains("beta.0") && !out_b.contains("alpha"), "{out_b}");
    // From a folder with no config, two are ambiguous…
    let elsewhere = tempfile::tempdir().expect("dir");
    let (code, _, err) = text(&client_in(elsewhere.path(), &["status"], &env));
    assert_eq!(code, 1);
    assert!(err.contains("several supervisors are running"), "{err}");
    b.assert_stops_cleanly(secs(10));
    // …one is found (`docker exec -w / app supervisor status`).
    let (code, out, _) = text(&client_in(elsewhere.path(), &["status"], &env));
    assert_eq!(code, 0);
    assert!(out.contains("alpha.0"), "{out}");
    a.assert_stops_cleanly(secs(10));
}
