//! SPEC §5: /health, /livez, /readyz, /metrics, probes, ordering, wait_for.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{assert_before, free_port, http, secs, wait_health, wait_lines, Test};

#[test]
fn health_goes_from_starting_to_ok_to_degraded_to_stopping() {
    // wait_for holds the run in "starting" until the test opens the port.
    let port = free_port();
    let config = format!(
        r#"
wait_for = ["tcp://127.0.0.1:{port}"]
wait_timeout = "30s"

[process.web]
command = "sleep 1000"

[process.worker]
command = 'while [ ! -f fail ]; do sleep 0.02; done; exit 3'
restart = "never"
critical = false

[process.slow-stopper]
command = "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.02; done"
"#
    );
    let mut run = Test::new().config(&config).args(["run"]).start();
    let address = run.health_address();
    let starting = wait_health(&address, secs(10), "starting", |code, json| {
        code == 503 && json["status"] == "starting"
    });
    assert_eq!(starting["phase"], "waiting_for");
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the awaited port");
    let ok = wait_health(&address, secs(10), "ok", |code, _| code == 200);
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["phase"], "running");
    assert!(ok["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(ok["uptime_seconds"].as_f64().is_some());
    let processes = ok["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 3);
    for p in processes {
        assert_eq!(p["state"], "running");
        assert_eq!(p["ready"], true);
        assert!(p["pid"].as_i64().is_some());
        assert_eq!(p["restarts"], 0);
    }
    std::fs::write(run.dir().join("fail"), "").expect("touch");
    let degraded = wait_health(&address, secs(10), "degraded", |code, json| {
        code == 503 && json["status"] == "degraded"
    });
    assert_eq!(degraded["reason"], "worker.0 is failed for good");
    run.signal("TERM");
    let stopping = wait_health(&address, secs(10), "stopping", |code, json| {
        code == 503 && json["status"] == "stopping"
    });
    assert_eq!(stopping["phase"], "stopping");
    assert_eq!(run.wait_exit(secs(10)), 0);
}

#[test]
fn endpoints_methods_and_paths() {
    let mut run = Test::new()
        .config("[process.web]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(10), "ok", |code, _| code == 200);
    assert_eq!(http("GET", &address, "/livez").0, 200);
    assert_eq!(http("GET", &address, "/readyz"), (200, "ok\n".to_string()));
    let (code, body) = http("HEAD", &address, "/health");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(http("POST", &address, "/health").0, 405);
    assert_eq!(http("DELETE", &address, "/metrics").0, 405);
    assert_eq!(http("GET", &address, "/nope").0, 404);
    // Nothing from the environment or the config's commands is ever in a response.
    let (_, body) = http("GET", &address, "/health");
    assert!(!body.contains("sleep 1000"), "{body}");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let mut run = Test::new()
        .config("[process.api]\ncommand = \"sleep 1000\"\ninstances = 2\n[process.job]\ncommand = \"exit 1\"\nbackoff = { initial = \"50ms\", max = \"50ms\" }\nmax_restarts = 2\ncritical = false\n")
        .args(["run"])
        .start();
    let address = run.health_address();
    run.wait_stderr("failed for good", secs(10));
    let (code, body) = http("GET", &address, "/metrics");
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{body}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected kind for {name}"),
        }
    };
    assert_eq!(value("supervisor_up", &[("process", "api"), ("instance", "1")]), 1.0);
    assert_eq!(value("supervisor_ready", &[("process", "api"), ("instance", "0")]), 1.0);
    assert_eq!(value("supervisor_up", &[("process", "job"), ("instance", "0")]), 0.0);
    assert_eq!(
        value("supervisor_restarts_total", &[("process", "job"), ("instance", "0")]),
        2.0
    );
    assert_eq!(value("supervisor_phase", &[("phase", "running")]), 1.0);
    assert_eq!(value("supervisor_phase", &[("phase", "stopping")]), 0.0);
    assert!(value("supervisor_uptime_seconds", &[]) > 0.0);
    assert_eq!(value("supervisor_migrations_applied_total", &[]), 0.0);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn depends_on_waits_for_readiness_by_each_probe_kind() {
    let port = free_port();
    let config = format!(
        r#"
[process.db]
command = 'sleep 0.4; date +%s%N > db.ready; exec sleep 1000'
ready = {{ exec = "test -f db.ready", interval = "50ms" }}

[process.api]
command = ["python3", "-u", "-c", "import http.server as h, time; time.sleep(0.3); print('serving', flush=True); h.ThreadingHTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler).serve_forever()"]
ready = {{ http = "http://127.0.0.1:{port}/", interval = "50ms" }}
depends_on = ["db"]

[process.web]
command = 'date +%s%N > web.started; exec sleep 1000'
depends_on = {{ api = "ready" }}

[process.tcp-check]
command = 'sleep 1000'
ready = {{ tcp = "127.0.0.1:{port}", interval = "50ms" }}
"#
    );
    let mut run = Test::new().config(&config).args(["run"]).start();
    let address = run.health_address();
    wait_health(&address, secs(15), "everything ready", |code, _| code == 200);
    let read = |name: &str| -> u128 {
        wait_lines(&run.dir().join(name), 1, secs(1))[0]
            .parse()
            .expect("timestamp")
    };
    let (db_ready, web_started) = (read("db.ready"), read("web.started"));
    assert!(
        web_started > db_ready + 300_000_000,
        "web started before api could be ready: {db_ready} {web_started}"
    );
    // Our own lines travel on stderr, apart from the children's: wait for the last one read below.
    let stderr = run.wait_stderr("started process=web", secs(10));
    assert_before(&stderr, "ready process=db", "started process=api");
    assert_before(&stderr, "ready process=api", "started process=web");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_failing_liveness_probe_restarts_a_hung_server() {
    let port = free_port();
    let server = format!(
        "import http.server as h, os, time\n\
         open('starts.log', 'a').write('start\\n')\n\
         class H(h.BaseHTTPRequestHandler):\n    \
             def do_GET(self):\n        \
                 while os.path.exists('hang'): time.sleep(0.05)\n        \
                 self.send_response(200); self.end_headers()\n    \
             def log_message(self, *a): pass\n\
         s = h.ThreadingHTTPServer(('127.0.0.1', {port}), H)\n\
         s.daemon_threads = True\n\
         s.serve_forever()\n"
    );
    let config = format!(
        r#"
[process.api]
command = ["python3", "server.py"]
ready = {{ http = "http://127.0.0.1:{port}/", interval = "50ms" }}
live = {{ http = "http://127.0.0.1:{port}/", interval = "100ms", timeout = "200ms", failure_threshold = 3 }}
stop_timeout = "1s"
backoff = {{ initial = "50ms", max = "50ms" }}
"#
    );
    let mut run = Test::new()
        .file("server.py", &server)
        .config(&config)
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(15), "ok", |code, _| code == 200);
    std::fs::write(run.dir().join("hang"), "").expect("make the server hang");
    run.wait_stderr("liveness probe failed 3 times: restarting", secs(10));
    std::fs::remove_file(run.dir().join("hang")).expect("unhang");
    let healthy = wait_health(&address, secs(15), "ok again", |code, json| {
        code == 200 && json["processes"][0]["restarts"] == 1
    });
    assert_eq!(healthy["processes"][0]["state"], "running");
    assert_eq!(wait_lines(&run.dir().join("starts.log"), 2, secs(1)).len(), 2);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn wait_for_gives_up_after_wait_timeout_naming_the_target() {
    let port = free_port();
    let finished = Test::new()
        .config(&format!(
            "wait_for = [\"tcp://127.0.0.1:{port}\"]\nwait_timeout = \"1s\"\n[process.web]\ncommand = \"echo started\"\n"
        ))
        .args(["run"])
        .run();
    finished.assert_code(69);
    assert!(finished.stdout.is_empty(), "a process started: {}", finished.stdout);
    assert!(
        finished.stderr.contains(&format!(
            "error: wait_for: tcp://127.0.0.1:{port} is not reachable after 1s"
        )),
        "{}",
        finished.stderr
    );
}

/// SPEC §4: `wait_timeout` is a budget spent in full: a target that opens
/// shortly before its end is reached, one that never opens is given up on
/// no earlier than the budget.
#[test]
fn wait_timeout_is_spent_in_full() {
    let port = free_port();
    let config = format!(
        "wait_for = [\"tcp://127.0.0.1:{port}\"]\nwait_timeout = \"4s\"\n[process.web]\ncommand = \"echo started\"\nrestart = \"never\"\n"
    );
    let started = Instant::now();
    let mut late = Test::new().config(&config).args(["run"]).start();
    late.wait_stderr("waiting", secs(10));
    while started.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    assert_eq!(late.wait_exit(secs(30)), 0, "{}", late.stderr.text());
    assert!(late.stdout.text().contains("web.0 | started"));

    let never = free_port();
    let started = Instant::now();
    let finished = Test::new()
        .config(&config.replace(&port.to_string(), &never.to_string()))
        .args(["run"])
        .run();
    finished.assert_code(69);
    // The old schedule gave up at its last try (3.1 s), when the next one would pass the budget.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "gave up after {:?}",
        started.elapsed()
    );
}

/// Issue 14: the service URL the app already has (`${REDIS_URL}`) can be
/// waited on as it is: its host and port, never its credentials in a message.
#[test]
fn wait_for_takes_service_urls_and_never_prints_their_credentials() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let finished = Test::new()
        .config("wait_for = [\"${REDIS_URL}\"]\n[process.web]\ncommand = \"echo started\"\nrestart = \"never\"\n")
        .env("REDIS_URL", &format!("redis://:CANARY-pw@127.0.0.1:{port}/0"))
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("web.0 | started"), "{}", finished.stdout);
    assert!(!finished.stderr.contains("CANARY"), "{}", finished.stderr);
    let written = Test::new()
        .config(&format!(
            "wait_for = [\"postgres://app:CANARY-pw@127.0.0.1:{}/app\"]\nwait_timeout = \"1s\"\n[process.web]\ncommand = \"true\"\n",
            free_port()
        ))
        .args(["run"])
        .run();
    written.assert_code(69);
    assert!(
        written.stderr.contains("postgres://***@127.0.0.1:"),
        "{}",
        written.stderr
    );
    assert!(!written.stderr.contains("CANARY"), "{}", written.stderr);
}

#[test]
fn wait_for_targets_take_hosts_from_the_environment_without_printing_them() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = "wait_for = [\"tcp://${REDIS_HOST:-redis}:${REDIS_PORT}\"]\n[process.web]\ncommand = \"echo started\"\nrestart = \"never\"\n";
    let finished = Test::new()
        .config(config)
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", &port.to_string())
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("web.0 | started"), "{}", finished.stdout);
    assert!(
        finished.stderr.contains("tcp://${REDIS_HOST:-redis}:${REDIS_PORT}"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains(&port.to_string()), "{}", finished.stderr);

    // Unset, or filled with something that is not a port: config errors that start nothing.
    let unset = Test::new().config(config).args(["run"]).run();
    unset.assert_code(78);
    assert!(
        unset
            .stderr
            .contains("supervisor.toml:1: wait_for: variable REDIS_PORT is not set"),
        "{}",
        unset.stderr
    );
    let bad = Test::new()
        .config(config)
        .env("REDIS_PORT", "sixty-three-seventy-nine")
        .args(["run"])
        .run();
    bad.assert_code(78);
    assert!(
        bad.stderr
            .contains("wait_for: invalid target \"tcp://${REDIS_HOST:-redis}:${REDIS_PORT}\""),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains("sixty-three"), "{}", bad.stderr);
    assert!(unset.stdout.is_empty() && bad.stdout.is_empty());
    drop(listener);
}

#[test]
fn probes_expand_variables_from_the_process_environment() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config = "[process.web]\ncommand = \"sleep 1000\"\nenv = { PORT = \"${APP_PORT}\" }\nready = { tcp = \"127.0.0.1:${PORT}\", interval = \"50ms\" }\n";
    let mut run = Test::new()
        .config(config)
        .env("APP_PORT", &port.to_string())
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(5), "web ready through its own PORT", |code, json| {
        code == 200 && json["processes"][0]["ready"] == true
    });
    run.assert_stops_cleanly(secs(10));

    let unset = Test::new().config(config).args(["run"]).run();
    unset.assert_code(78);
    assert!(
        unset
            .stderr
            .contains("process.web.env.PORT: variable APP_PORT is not set"),
        "{}",
        unset.stderr
    );
    let bad = Test::new().config(config).env("APP_PORT", "http").args(["run"]).run();
    bad.assert_code(78);
    assert!(
        bad.stderr
            .contains("process.web.ready: \"127.0.0.1:${PORT}\" does not expand to a valid target"),
        "{}",
        bad.stderr
    );
    drop(listener);
}

#[test]
fn idle_and_garbage_connections_do_not_stall_health() {
    let mut run = Test::new()
        .config("[process.web]\ncommand = \"sleep 1000\"\n")
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_health(&address, secs(10), "ok", |code, _| code == 200);
    let mut junk = Vec::new();
    for i in 0..300 {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        match i % 3 {
            0 => {}                                                                       // idle
            1 => stream.write_all(b"GET /health HTTP/1.1\r\nHost: x").expect("half"),     // half-sent
            _ => stream.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").expect("junk"), // garbage
        }
        junk.push(stream);
    }
    let started = Instant::now();
    let (code, _) = http("GET", &address, "/health");
    let took = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        took < Duration::from_millis(500),
        "/health took {took:?} with 300 junk connections"
    );
    drop(junk);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn healthcheck_exits_0_on_200_and_1_otherwise() {
    let mut run = Test::new()
        .config("[process.web]\ncommand = \"sleep 1000\"\n[process.job]\ncommand = \"exit 2\"\nrestart = \"never\"\ncritical = false\n")
        .args(["run"])
        .start();
    let address = run.health_address();
    run.wait_stderr("non-critical process failed", secs(10));
    let url = format!("http://{address}/health");
    let degraded = Test::new().args(["healthcheck", "--url", &url]).run();
    degraded.assert_code(1);
    // Why, in one line, as /health says it (SPEC §5).
    assert_eq!(
        degraded.stderr.trim(),
        "healthcheck: degraded: job.0 is failed for good"
    );
    let livez = Test::new()
        .args(["healthcheck", "--url", &format!("http://{address}/livez")])
        .run();
    livez.assert_code(0);
    // The default URL comes from SUPERVISOR_HEALTH_LISTEN.
    let by_setting = Test::new()
        .env("SUPERVISOR_HEALTH_LISTEN", &address)
        .args(["healthcheck"])
        .run();
    by_setting.assert_code(1);
    // It reached the server (a refused connection would also exit 1).
    assert_eq!(
        by_setting.stderr.trim(),
        "healthcheck: degraded: job.0 is failed for good"
    );
    run.assert_stops_cleanly(secs(10));
    let unreachable = Test::new()
        .args(["healthcheck", "--url", &url, "--timeout", "1s"])
        .run();
    unreachable.assert_code(1);
}

#[test]
fn a_health_port_in_use_is_a_config_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let finished = Test::new()
        .config("[process.web]\ncommand = \"echo started\"\n")
        .env("SUPERVISOR_HEALTH_LISTEN", &address)
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert!(
        finished
            .stderr
            .contains(&format!("error: health.listen: cannot listen on {address}")),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains("hint: another program (a second project's supervisor?)"),
        "{}",
        finished.stderr
    );
    assert!(finished.stdout.is_empty());
}

/// Issue 14: the forms people type (`9090`, `:9090`) work; a bad value is
/// named under the variable, never printed.
#[test]
fn health_listen_takes_a_bare_port_and_names_a_bad_setting_without_its_value() {
    let port = free_port();
    for form in [port.to_string(), format!(":{port}")] {
        let mut run = Test::new()
            .config("[process.web]\ncommand = \"sleep 1000\"\n")
            .env("SUPERVISOR_HEALTH_LISTEN", &form)
            .args(["run"])
            .start();
        run.wait_stderr(&format!("health server listening address=0.0.0.0:{port}"), secs(10));
        run.assert_stops_cleanly(secs(10));
    }
    let finished = Test::new()
        .config("[process.web]\ncommand = \"true\"\n")
        .env("SUPERVISOR_HEALTH_LISTEN", "CANARY-not-an-address")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert!(
        finished
            .stderr
            .contains("SUPERVISOR_HEALTH_LISTEN: is not a port or an address"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("CANARY"), "{}", finished.stderr);
    let file = Test::new()
        .config("[health]\nlisten = \"nine\"\n[process.web]\ncommand = \"true\"\n")
        .args(["run"])
        .run();
    file.assert_code(78);
    assert!(file.stderr.contains("health.listen"), "{}", file.stderr);
}
