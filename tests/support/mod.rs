//! Test harness: run the real binary in its own temp dir, optionally as PID 1
//! of a fresh PID namespace, and wait on observable things with deadlines.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod db;
pub mod lb;
pub mod relay;

pub const BIN: &str = env!("CARGO_BIN_EXE_supervisor");

/// A test run of `supervisor`, built like just's `Test`.
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    as_pid1: bool,
    shell: Option<String>,
    clean_env: bool,
    /// Folder under `dir` to run in (an example's copy).
    subdir: Option<String>,
    /// `dir` is the root filesystem and `/supervisor` in it the binary (see `in_root`).
    own_root: bool,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
            as_pid1: false,
            shell: None,
            clean_env: false,
            subdir: None,
            own_root: false,
        }
    }

    /// An image of its own: the test's directory becomes the root filesystem
    /// of a PID 1 in fresh PID and mount namespaces (`unshare --root`), with
    /// `binary` as `/supervisor`, `/proc` mounted and `/dev/null` (which Docker
    /// and Kubernetes always provide) and nothing else; the test adds the rest
    /// with [`Test::file`]. It runs from `/app`, where [`Test::config`] writes.
    /// Needs real root (mknod, setuid to the users of its /etc/passwd).
    pub fn in_root(binary: &Path) -> Test {
        let mut test = Test::new();
        let root = test.dir.path();
        for folder in ["app", "proc", "dev"] {
            std::fs::create_dir_all(root.join(folder)).expect("mkdir");
        }
        std::fs::copy(binary, root.join("supervisor")).expect("copy the binary into the root");
        let status = Command::new("mknod")
            .args(["-m", "666"])
            .arg(root.join("dev/null"))
            .args(["c", "1", "3"])
            .status()
            .expect("mknod");
        assert!(status.success(), "mknod /dev/null (needs root)");
        test.subdir = Some("app".into());
        test.own_root = true;
        test.as_pid1 = true;
        test.clean_env = true;
        test
    }

    /// The root filesystem of [`Test::in_root`] (the test's directory).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A copy of `examples/NAME`, beside the shared `examples/stand-ins` it
    /// requires, run from the example's folder with the stand-in tools (`npx`
    /// for Prisma, `cloudflared`) first on PATH. A copy, so runs never write
    /// into the repository.
    pub fn example(name: &str) -> Test {
        let mut test = Test::new();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for folder in [name, "stand-ins"] {
            let status = Command::new("cp")
                .arg("-a")
                .arg(examples.join(folder))
                .arg(test.path())
                .status()
                .expect("cp");
            assert!(status.success(), "cannot copy examples/{folder}");
        }
        let mut path = OsString::from(test.path().join("stand-ins/bin"));
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        test.env.push(("PATH".into(), path));
        test.subdir = Some(name.to_string());
        test
    }

    /// Writes `supervisor.toml` in the test's directory.
    pub fn config(self, text: &str) -> Test {
        self.file("supervisor.toml", text)
    }

    pub fn file(self, name: &str, text: &str) -> Test {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write test file");
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Test {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Test {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets a variable to raw bytes (non-UTF-8 values).
    pub fn env_bytes(mut self, name: &str, value: &[u8]) -> Test {
        use std::os::unix::ffi::OsStringExt;
        self.env.push((name.into(), OsString::from_vec(value.to_vec())));
        self
    }

    /// Starts from an empty environment (plus PATH), as `env -i` would.
    pub fn clean_env(mut self) -> Test {
        self.clean_env = true;
        self
    }

    /// Runs as PID 1 of a new PID namespace, as in a container.
    pub fn pid1(mut self) -> Test {
        self.as_pid1 = true;
        self
    }

    /// Runs `sh -c SCRIPT` instead of the binary; the script finds it in `$BIN`.
    pub fn shell(mut self, script: &str) -> Test {
        self.shell = Some(script.to_string());
        self
    }

    /// The folder it runs in.
    pub fn path(&self) -> PathBuf {
        match &self.subdir {
            Some(subdir) => self.dir.path().join(subdir),
            None => self.dir.path().to_path_buf(),
        }
    }

    fn command(&self) -> Command {
        let mut command = if let Some(script) = &self.shell {
            let mut command = Command::new("sh");
            command.arg("-c").arg(script).env("BIN", BIN);
            command
        } else if self.own_root {
            let mut command = Command::new("unshare");
            command
                .args(["--pid", "--fork", "--mount-proc=/proc", "--wd=/app"])
                .arg(format!("--root={}", self.dir.path().display()))
                .arg("/supervisor");
            command
        } else if self.as_pid1 {
            let mut command = Command::new("unshare");
            command.args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", BIN]);
            command
        } else {
            Command::new(BIN)
        };
        if self.clean_env {
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
        command
            .args(&self.args)
            .current_dir(self.path())
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("SUPERVISOR_LOG_FORMAT")
            .env_remove("SUPERVISOR_CONTEXT")
            .env("NO_COLOR", "1")
            // Tests run in parallel: an ephemeral port each, found in the log.
            .env("SUPERVISOR_HEALTH_LISTEN", "127.0.0.1:0")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts it and returns a handle to interact with it while it runs.
    pub fn start(self) -> Running {
        let mut child = self.command().spawn().expect("spawn supervisor");
        let stdout = Captured::start(child.stdout.take().expect("stdout"));
        let stderr = Captured::start(child.stderr.take().expect("stderr"));
        Running {
            child,
            raw_stdout: None,
            stdout,
            stderr,
            test: self,
            status: None,
        }
    }

    /// Starts it with nobody reading its stdout (a stalled `docker logs`).
    pub fn start_unread_stdout(self) -> Running {
        let mut child = self.command().spawn().expect("spawn supervisor");
        let raw_stdout = child.stdout.take();
        let stderr = Captured::start(child.stderr.take().expect("stderr"));
        Running {
            child,
            raw_stdout,
            stdout: Captured::start(std::io::empty()),
            stderr,
            test: self,
            status: None,
        }
    }

    /// Runs it to completion (at most 30 s).
    pub fn run(self) -> Finished {
        let mut running = self.start();
        let code = running.wait_exit(Duration::from_secs(30));
        running.finished(code)
    }
}

/// Output of a stream, collected by a thread, with a condition to wait on.
/// Bytes so far, and whether the stream has closed.
type Buffer = Mutex<(Vec<u8>, bool)>;

#[derive(Clone)]
pub struct Captured {
    inner: Arc<(Buffer, Condvar)>,
}

impl Captured {
    pub fn start(mut stream: impl Read + Send + 'static) -> Captured {
        let captured = Captured {
            inner: Arc::new((Mutex::new((Vec::new(), false)), Condvar::new())),
        };
        let inner = captured.inner.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                let (lock, cond) = &*inner;
                let mut state = lock.lock().unwrap();
                if n == 0 {
                    state.1 = true;
                    cond.notify_all();
                    return;
                }
                state.0.extend_from_slice(&buf[..n]);
                cond.notify_all();
            }
        });
        captured
    }

    /// What was written, with the prefixes' padding taken out (`web.0    | x`
    /// reads `web.0 | x`), so tests need not know the widest name of a run.
    pub fn text(&self) -> String {
        unpad(&self.raw())
    }

    /// What was written, exactly.
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.inner.0.lock().unwrap().0).into_owned()
    }

    /// Waits until the text satisfies `pred`, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.inner;
        let mut state = lock.lock().unwrap();
        loop {
            let text = unpad(&String::from_utf8_lossy(&state.0));
            if pred(&text) {
                return text;
            }
            let now = Instant::now();
            if now >= deadline || state.1 {
                panic!("timed out waiting for {what}; got:\n{text}");
            }
            state = cond.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits up to `timeout` for the stream to close; false if it did not
    /// (a leftover process may hold it open).
    pub fn closed_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.inner;
        let mut state = lock.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = cond.wait_timeout(state, deadline - now).unwrap().0;
        }
        true
    }

    /// Waits until the stream is closed (the writer exited).
    pub fn wait_closed(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.inner;
        let mut state = lock.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            assert!(now < deadline, "stream not closed in time");
            state = cond.wait_timeout(state, deadline - now).unwrap().0;
        }
        unpad(&String::from_utf8_lossy(&state.0))
    }
}

pub struct Running {
    child: Child,
    /// Our end of the supervisor's stdout, when the test reads it itself.
    raw_stdout: Option<std::process::ChildStdout>,
    pub stdout: Captured,
    pub stderr: Captured,
    test: Test,
    status: Option<i32>,
}

impl Running {
    /// The last value the test gave `name` with [`Test::env`].
    pub fn env(&self, name: &str) -> Option<String> {
        self.test
            .env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.to_string_lossy().into_owned())
    }

    pub fn dir(&self) -> PathBuf {
        self.test.path()
    }

    /// The supervisor's pid as seen from here (inside the namespace it is 1).
    pub fn pid(&self) -> i32 {
        let outer = self.child.id() as i32;
        if !self.test.as_pid1 {
            return outer;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(&pid) = children(outer).first() {
                return pid;
            }
            assert!(Instant::now() < deadline, "the namespace's PID 1 never appeared");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The unread stdout of `start_unread_stdout`.
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.raw_stdout.take().expect("started with start_unread_stdout")
    }

    /// Sends `signal` (a name such as "TERM") to the supervisor.
    pub fn signal(&self, signal: &str) {
        send(self.pid(), signal);
    }

    /// `docker stop`: SIGTERM, then exit 0 within `timeout`, and every
    /// process that was running was stopped by us (its own stop is logged):
    /// an exit code alone cannot tell, since the kernel kills a namespace's
    /// children anyway when its PID 1 exits.
    pub fn assert_stops_cleanly(&mut self, timeout: Duration) {
        self.signal("TERM");
        let code = self.wait_exit(timeout);
        let stderr = self.stderr.text();
        assert_eq!(code, 0, "stderr: {stderr}");
        assert_each_run_ended(&stderr);
    }

    /// Waits for a line on stdout containing `needle`.
    pub fn wait_stdout(&self, needle: &str, timeout: Duration) -> String {
        self.stdout
            .wait_until(timeout, &format!("stdout {needle:?}"), |t| t.contains(needle))
    }

    /// The health server's address, from its start-up log line.
    pub fn health_address(&self) -> String {
        let text = self.wait_stderr("health server listening", Duration::from_secs(10));
        let line = text
            .lines()
            .find(|l| l.contains("health server listening"))
            .expect("listening line");
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
            return json["address"].as_str().expect("address field").to_string();
        }
        line.split("address=")
            .nth(1)
            .expect("address field")
            .split_whitespace()
            .next()
            .expect("address")
            .to_string()
    }

    /// Waits for `needle` on stderr (our own events are there).
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        self.stderr
            .wait_until(timeout, &format!("stderr {needle:?}"), |t| t.contains(needle))
    }

    /// Waits for the supervisor to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(code) = self.status {
            return code;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
                self.status = Some(code);
                // What it wrote last may still be in the pipes: let the readers catch up.
                self.stdout.closed_within(Duration::from_secs(5));
                self.stderr.closed_within(Duration::from_secs(5));
                return code;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "supervisor did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn finished(self, code: i32) -> Finished {
        Finished {
            code,
            stdout: self.stdout.wait_closed(Duration::from_secs(10)),
            stderr: self.stderr.wait_closed(Duration::from_secs(10)),
        }
    }

    /// Every process below the supervisor: (pid, state letter, command name).
    pub fn descendants(&self) -> Vec<Proc> {
        descendants(self.pid())
    }

    /// Waits until `pred` holds for the descendants.
    pub fn wait_descendants(&self, timeout: Duration, what: &str, pred: impl Fn(&[Proc]) -> bool) -> Vec<Proc> {
        let deadline = Instant::now() + timeout;
        loop {
            let procs = self.descendants();
            if pred(&procs) {
                return procs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; processes: {procs:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let outer = self.child.id() as i32;
            for pid in children(outer).into_iter().filter(|_| self.test.as_pid1) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub comm: String,
}

pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out
}

pub fn proc_info(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let state = stat[close + 2..].chars().next()?;
    Some(Proc { pid, state, comm })
}

pub fn descendants(root: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut stack = children(root);
    while let Some(pid) = stack.pop() {
        if let Some(info) = proc_info(pid) {
            out.push(info);
        }
        stack.extend(children(pid));
    }
    out
}

/// A line of `/proc/PID/status`, such as `SigBlk`.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

/// Lines of a file the children append to, once it has at least `n`.
pub fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines: Vec<String> = std::fs::File::open(path)
            .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
            .unwrap_or_default();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, want {n}: {lines:?}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (a name such as "TERM") to `pid`.
pub fn send(pid: i32, signal: &str) {
    let signal: nix::sys::signal::Signal = format!("SIG{signal}").parse().expect("signal name");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("kill");
}

/// `first` appears in `text`, and before `second`.
pub fn assert_before(text: &str, first: &str, second: &str) {
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
    };
    assert!(
        at(first) < at(second),
        "{first:?} should come before {second:?}:\n{text}"
    );
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A plain HTTP/1.1 request from the test side: (status, body).
pub fn http(method: &str, address: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).expect("connect to health server");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// GET /health until `pred(status, json)` holds.
pub fn wait_health(
    address: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = http("GET", address, "/health");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON: {body:?}: {e}"));
        if pred(status, &json) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {status} {json}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Pids whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Every instance's last run, as the supervisor logged it (`started
/// process=P instance=N pid=X`), is seen to end in the log after it:
/// stopped by us, exited during the stop, completed, failed or restarting.
pub fn assert_each_run_ended(stderr: &str) {
    let field = |line: &str, name: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    let lines: Vec<&str> = stderr.lines().collect();
    let mut last_start: std::collections::BTreeMap<(String, String), (usize, String)> = Default::default();
    for (at, line) in lines.iter().enumerate() {
        if line.contains(" started ") {
            if let (Some(process), Some(instance), Some(pid)) =
                (field(line, "process"), field(line, "instance"), field(line, "pid"))
            {
                last_start.insert((process, instance), (at, pid));
            }
        }
    }
    for ((process, instance), (at, pid)) in last_start {
        let ended = lines[at + 1..].iter().any(|line| {
            let same_run = field(line, "pid").as_deref() == Some(pid.as_str());
            let same_instance = field(line, "process").as_deref() == Some(process.as_str())
                && field(line, "instance").as_deref() == Some(instance.as_str());
            (same_run && (line.contains(" stopped ") || line.contains("exited during stop")))
                || (same_instance
                    && ["completed", "failed for good", "restarting"]
                        .iter()
                        .any(|word| line.contains(word)))
        });
        assert!(
            ended,
            "{process}.{instance} (pid {pid}) was never seen to stop:\n{stderr}"
        );
    }
}

/// `name.N   | line` → `name.N | line`, at the start of each line only.
fn unpad(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.find(" | ") {
            Some(at) if at > 0 && !line[..at].trim_end().contains(' ') && line[..at].ends_with(' ') => {
                out.push_str(line[..at].trim_end());
                out.push_str(&line[at..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}
