//! SPEC §6 "Drain": the first stop signal flips readiness and waits `drain`
//! before any child is signalled. Timings are bounds on observed events:
//! the child's TERM can only come `drain` after we sent ours.

use std::time::{Duration, Instant};

use crate::support::{http, secs, wait_health, Test};

/// A process that says when it got TERM, after its trap is set.
const SERVER: &str = r#"
[process.web]
command = "trap 'echo web got TERM; exit 0' TERM; echo web trap set; while :; do sleep 0.02; done"
"#;

#[test]
fn the_first_sigterm_flips_readiness_and_the_children_keep_serving_until_the_drain_ends() {
    let drain = Duration::from_secs(3);
    let mut run = Test::new()
        .config(&format!("drain = \"3s\"\n{SERVER}"))
        .args(["run"])
        .start();
    let address = run.health_address();
    run.wait_stdout("web trap set", secs(10));
    wait_health(&address, secs(10), "ok", |code, _| code == 200);

    let sent = Instant::now();
    run.signal("TERM");
    let draining = wait_health(&address, secs(5), "draining", |code, json| {
        code == 503 && json["status"] == "draining"
    });
    assert_eq!(draining["phase"], "draining");
    assert_eq!(draining["processes"][0]["state"], "running");
    let (code, body) = http("GET", &address, "/readyz");
    assert_eq!(
        (code, body.as_str()),
        (503, "the container stops soon: send no new requests\n")
    );
    assert_eq!(http("GET", &address, "/livez").0, 200);
    let healthcheck = Test::new()
        .args(["healthcheck", "--url", &format!("http://{address}/health")])
        .run();
    healthcheck.assert_code(1);
    assert!(
        healthcheck.stderr.contains("draining: the container stops soon"),
        "{}",
        healthcheck.stderr
    );

    run.wait_stdout("web got TERM", secs(15));
    assert!(
        sent.elapsed() >= drain,
        "web got TERM {:?} after our TERM, before the 3 s drain ended",
        sent.elapsed()
    );
    assert_eq!(run.wait_exit(secs(10)), 0);
    let stderr = run.stderr.text();
    assert!(stderr.contains("draining for 3s"), "{stderr}");
    assert!(stderr.contains("drain over: stopping"), "{stderr}");
}

#[test]
fn a_second_stop_signal_ends_the_drain_and_sigint_skips_it() {
    for (first, second) in [("TERM", Some("TERM")), ("INT", None)] {
        let mut run = Test::new()
            .config(&format!("drain = \"60s\"\n{SERVER}"))
            .args(["run"])
            .start();
        run.wait_stdout("web trap set", secs(10));
        run.signal(first);
        if let Some(second) = second {
            run.wait_stderr("draining for 1m", secs(5));
            run.signal(second);
            run.wait_stderr("second stop signal: ending the drain", secs(5));
        }
        // Far less than the 60 s drain.
        run.wait_stdout("web got TERM", secs(15));
        assert_eq!(run.wait_exit(secs(10)), 0, "{first} then {second:?}");
        let stderr = run.stderr.text();
        if second.is_none() {
            assert!(!stderr.contains("draining"), "SIGINT must not drain: {stderr}");
        }
    }
}

#[test]
fn the_drain_ends_when_every_process_has_exited_on_its_own() {
    let mut run = Test::new()
        .env("SUPERVISOR_DRAIN", "60s")
        .config(
            "[process.web]\ncommand = \"trap '' TERM; echo up; while [ ! -e done ]; do sleep 0.02; done; echo web leaves\"\n",
        )
        .args(["run"])
        .start();
    run.wait_stdout("up", secs(10));
    run.signal("TERM");
    run.wait_stderr("draining for 1m", secs(5));
    std::fs::write(run.dir().join("done"), "").expect("touch done");
    run.wait_stdout("web leaves", secs(10));
    // Nothing was restarted during the drain, and we did not wait it out.
    assert_eq!(run.wait_exit(secs(10)), 0);
    let stderr = run.stderr.text();
    assert!(!stderr.contains("restarting"), "{stderr}");
}

#[test]
fn a_critical_failure_drains_too_and_keeps_its_exit_code() {
    let mut run = Test::new()
        .config(&format!(
            "drain = \"2s\"\n{SERVER}\n[process.api]\ncommand = \"while [ ! -e crash ]; do sleep 0.02; done; exit 3\"\nrestart = \"never\"\n"
        ))
        .args(["run"])
        .start();
    let address = run.health_address();
    run.wait_stdout("web trap set", secs(10));
    wait_health(&address, secs(10), "ok", |code, _| code == 200);
    let crashed = Instant::now();
    std::fs::write(run.dir().join("crash"), "").expect("touch crash");
    let failed = wait_health(&address, secs(5), "failed while draining", |code, json| {
        code == 503 && json["phase"] == "draining"
    });
    assert_eq!(failed["status"], "failed");
    run.wait_stdout("web got TERM", secs(15));
    assert!(
        crashed.elapsed() >= Duration::from_secs(2),
        "web was stopped before the drain ended"
    );
    assert_eq!(run.wait_exit(secs(10)), 3);
    assert!(run.stderr.text().contains("critical process failed: draining for 2s"));
}

#[test]
fn a_drain_and_stop_that_cannot_fit_the_declared_grace_is_warned_about_at_start() {
    let config = "drain = \"5s\"\n[process.db]\ncommand = \"sleep 1000\"\nstop_timeout = \"4s\"\n\
                  [process.api]\ncommand = \"sleep 1000\"\nstop_timeout = \"3s\"\ndepends_on = [\"db\"]\n";
    let mut run = Test::new()
        .env("SUPERVISOR_STOP_GRACE", "10s")
        .config(config)
        .args(["run"])
        .start();
    let stderr = run.wait_stderr("does not fit", secs(10));
    assert!(
        stderr.contains("drain (5s) + the slowest stop (7s) = 12s does not fit SUPERVISOR_STOP_GRACE (10s)"),
        "{stderr}"
    );
    run.signal("INT");
    assert_eq!(run.wait_exit(secs(15)), 0);

    let mut fits = Test::new()
        .env("SUPERVISOR_STOP_GRACE", "30s")
        .config(config)
        .args(["run"])
        .start();
    fits.wait_stderr("started", secs(10));
    fits.signal("INT");
    assert_eq!(fits.wait_exit(secs(15)), 0);
    assert!(!fits.stderr.text().contains("does not fit"));
}

#[test]
fn bad_drain_values_are_config_errors() {
    let bad = Test::new()
        .config("drain = \"soon\"\n[process.web]\ncommand = \"true\"\n")
        .args(["run"])
        .run();
    bad.assert_code(78);
    assert!(bad.stderr.contains("drain"), "{}", bad.stderr);
    let bad = Test::new()
        .env("SUPERVISOR_DRAIN", "soon")
        .config("[process.web]\ncommand = \"true\"\n")
        .args(["run"])
        .run();
    bad.assert_code(78);
    assert!(
        bad.stderr.contains("SUPERVISOR_DRAIN: is not a duration"),
        "{}",
        bad.stderr
    );
}

/// How the load balancer learns that a replica goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// It polls `/readyz` (Traefik, HAProxy, cloud LBs): down after 2 × 200 ms.
    HealthChecks,
    /// Kubernetes: the endpoint is removed when SIGTERM is sent, and the
    /// proxies keep sending for their own lag (here 1 s).
    EndpointLag,
}

const ENDPOINT_LAG: Duration = Duration::from_secs(1);

struct Replica {
    name: &'static str,
    port: u16,
    health_port: u16,
}

impl Replica {
    fn new(name: &'static str) -> Replica {
        Replica {
            name,
            port: crate::support::free_port(),
            health_port: crate::support::free_port(),
        }
    }

    /// `supervisor run` with a real Node server that closes its listener on SIGTERM.
    fn start(&self, drain: &str) -> crate::support::Running {
        let server = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drain-server/server.js");
        let run = Test::new()
            .env("SUPERVISOR_HEALTH_LISTEN", &format!("127.0.0.1:{}", self.health_port))
            .env("SUPERVISOR_DRAIN", drain)
            .config(&format!(
                r#"
[process.web]
command = ["node", "{server}"]
env = {{ PORT = "{port}", REPLICA = "{name}" }}
ready = {{ http = "http://127.0.0.1:{port}/", interval = "100ms" }}
"#,
                server = server.display(),
                port = self.port,
                name = self.name,
            ))
            .args(["run"])
            .start();
        wait_health(&run.health_address(), secs(20), "ready", |code, _| code == 200);
        run
    }
}

/// Two replicas behind HAProxy under a steady load (~200 req/s); each is
/// stopped and replaced in turn, `rolls` times. Returns what the clients saw.
fn rolling_deploy(shape: Shape, drain: &str, rolls: usize) -> crate::support::lb::Tally {
    use crate::support::lb::{Backend, HaProxy, Load};
    let replicas = [Replica::new("a"), Replica::new("b")];
    let mut runs: Vec<_> = replicas.iter().map(|r| r.start(drain)).collect();
    let backends: Vec<Backend<'_>> = replicas
        .iter()
        .map(|r| Backend {
            name: r.name,
            port: r.port,
            check_port: (shape == Shape::HealthChecks).then_some(r.health_port),
        })
        .collect();
    let lb = HaProxy::start(&backends);
    let serving = if shape == Shape::HealthChecks { "UP" } else { "no check" };
    for replica in &replicas {
        lb.wait_status(replica.name, serving, secs(10));
    }
    let load = Load::start(&lb.address, 4, Duration::from_millis(20));
    for _ in 0..rolls {
        for (replica, run) in replicas.iter().zip(runs.iter_mut()) {
            run.signal("TERM");
            if shape == Shape::EndpointLag {
                // The endpoint controller's lag is the fault injected here.
                std::thread::sleep(ENDPOINT_LAG);
                lb.command(&format!("disable server app/{}", replica.name));
            }
            assert_eq!(run.wait_exit(secs(30)), 0, "{}: {}", replica.name, run.stderr.text());
            *run = replica.start(drain);
            if shape == Shape::EndpointLag {
                lb.command(&format!("enable server app/{}", replica.name));
            }
            lb.wait_status(replica.name, serving, secs(10));
        }
    }
    let tally = load.finish();
    for run in &mut runs {
        run.assert_stops_cleanly(secs(30));
    }
    tally
}

#[test]
fn behind_haproxy_polling_readyz_a_rolling_deploy_fails_no_request_with_drain() {
    let without = rolling_deploy(Shape::HealthChecks, "0s", 1);
    let with = rolling_deploy(Shape::HealthChecks, "1s", 2);
    eprintln!("haproxy, /readyz checks every 200 ms: without drain {without:?} (2 replacements); drain 1s {with:?} (4 replacements)");
    assert!(
        without.failed > 0,
        "a stop without drain must lose requests here, or this test could not see a loss: {without:?}"
    );
    assert_eq!(with.failed, 0, "with drain: {with:?}");
    assert!(with.sent > 400, "the load ran: {with:?}");
}

#[test]
fn with_the_kubernetes_endpoint_lag_a_drain_longer_than_the_lag_fails_no_request() {
    let without = rolling_deploy(Shape::EndpointLag, "0s", 1);
    let with = rolling_deploy(Shape::EndpointLag, "2s", 1);
    eprintln!("haproxy, endpoint removed 1 s after SIGTERM: without drain {without:?}; drain 2s {with:?} (2 replacements each)");
    assert!(without.failed > 0, "{without:?}");
    assert_eq!(with.failed, 0, "with drain: {with:?}");
}
