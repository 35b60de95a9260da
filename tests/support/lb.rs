//! A real load balancer in front of replicas, and a steady load through it:
//! HAProxy from Debian, started here on free ports with an admin socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::free_port;

/// One backend server: where its traffic goes and, when HAProxy polls its
/// health itself, the port of its `/readyz`.
pub struct Backend<'a> {
    pub name: &'a str,
    pub port: u16,
    pub check_port: Option<u16>,
}

pub struct HaProxy {
    child: Child,
    pub address: String,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

fn binary() -> &'static str {
    if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    }
}

impl HaProxy {
    /// HAProxy with active checks like Traefik's or a cloud LB's (`GET /readyz`
    /// every 200 ms, down after 2 failures) on the backends that have a
    /// check port, and no retries: like Traefik without its retry
    /// middleware, a request sent to a server that refuses it fails.
    pub fn start(backends: &[Backend<'_>]) -> HaProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("admin.sock");
        let port = free_port();
        let mut config = format!(
            "global\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 0\n  option http-server-close\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\
             backend app\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n  default-server inter 200ms fall 2 rise 2\n",
            socket.display()
        );
        for backend in backends {
            config.push_str(&format!("  server {} 127.0.0.1:{}", backend.name, backend.port));
            if let Some(check) = backend.check_port {
                config.push_str(&format!(" check port {check}"));
            }
            config.push('\n');
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (apt-get install haproxy)");
        let haproxy = HaProxy {
            child,
            address: format!("127.0.0.1:{port}"),
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while haproxy.try_command("show info").is_none() {
            assert!(Instant::now() < deadline, "haproxy's admin socket never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    fn try_command(&self, line: &str) -> Option<String> {
        let mut stream = UnixStream::connect(&self.socket).ok()?;
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// A command on the admin socket (`disable server app/a`).
    pub fn command(&self, line: &str) -> String {
        self.try_command(line).expect("haproxy admin socket")
    }

    /// The server's status as HAProxy sees it: UP, DOWN, MAINT, "no check", "UP 1/2"…
    pub fn status(&self, server: &str) -> String {
        let csv = self.command("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let column = header.iter().position(|h| *h == "status").expect("a status column");
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&"app") && fields.get(1) == Some(&server))
            .and_then(|fields| fields.get(column).map(|s| s.to_string()))
            .unwrap_or_default()
    }

    pub fn wait_status(&self, server: &str, wanted: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(server);
            if status == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy never saw {server} {wanted} (last: {status:?})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests at a steady rate through the load balancer, counted.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<Tally>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
}

impl Load {
    /// `clients` threads, each sending one request every `every` (a new
    /// connection each, as browsers behind a proxy mostly do).
    pub fn start(address: &str, clients: usize, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let (stop, address) = (stop.clone(), address.to_string());
                std::thread::spawn(move || {
                    let mut tally = Tally::default();
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        tally.sent += 1;
                        if !request_ok(&address) {
                            tally.failed += 1;
                        }
                        next += every;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    tally
                })
            })
            .collect();
        Load { stop, clients }
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().fold(Tally::default(), |total, client| {
            let tally = client.join().expect("load client");
            Tally {
                sent: total.sent + tally.sent,
                failed: total.failed + tally.failed,
            }
        })
    }
}

/// One GET; true on a 200 with the replica's answer.
fn request_ok(address: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("ok ")
}
