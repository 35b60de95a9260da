//! Throwaway database servers, started by the tests themselves.
//!
//! PostgreSQL: `initdb` once per test run into a template, then each test
//! gets a copy of it on a free port (`pg_ctl start`), stopped when dropped.
//! MariaDB: the same with `mariadb-install-db` and `mariadbd`. Both servers
//! refuse to run as root, so as root they run as `nobody`. Missing server
//! binaries fail the test with the install hint, never a silent skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::free_port;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs a server tool as `nobody` when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn chown_to_server_user(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A new folder holding a copy of `template`'s `data`, owned by the server user.
fn copy_of(template: &Path) -> tempfile::TempDir {
    let dir = open_tempdir();
    run(
        Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(dir.path().join("data")),
        "copy the template",
    );
    chown_to_server_user(dir.path());
    dir
}

/// A folder every user can enter (a server running as nobody lives inside).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

fn postgres_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|bin| bin.join("initdb").exists())
        .expect("PostgreSQL server binaries not found: run ./scripts/test.sh, or `apt-get install postgresql`")
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Extra `-c` settings (TLS).
    extra: String,
}

static PG_TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

impl Postgres {
    /// A fresh cluster of its own, up and accepting connections.
    pub fn start() -> Postgres {
        let (template, bin) = PG_TEMPLATE.get_or_init(|| {
            let bin = postgres_bin();
            let dir = open_tempdir();
            let data = dir.path().join("data");
            std::fs::create_dir(&data).expect("mkdir");
            chown_to_server_user(&data);
            run(
                as_server_user(&bin.join("initdb")).args(["-D"]).arg(&data).args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]),
                "initdb",
            );
            (dir, bin)
        });
        let dir = copy_of(template.path());
        let mut pg = Postgres {
            dir,
            bin: bin.clone(),
            port: 0,
            extra: String::new(),
        };
        pg.port = free_port();
        pg.start_server();
        pg
    }

    /// A cluster with extra server settings, e.g. `-c max_connections=10`.
    pub fn start_with(settings: &str) -> Postgres {
        let mut pg = Postgres::start();
        pg.stop_server("fast");
        pg.extra = settings.to_string();
        pg.start_server();
        pg
    }

    /// A cluster that accepts TCP clients only over TLS (`hostssl`), with
    /// this certificate and key (copied in, owned by the server user).
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        let mut pg = Postgres::start();
        pg.stop_server("fast");
        let data = pg.data();
        std::fs::copy(cert, data.join("server.crt")).expect("copy the certificate");
        std::fs::copy(key, data.join("server.key")).expect("copy the key");
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod the key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        chown_to_server_user(&data);
        pg.extra = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_string();
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (or restarts) the server on its port.
    pub fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        run(
            as_server_user(&self.bin.join("pg_ctl"))
                .args(["-D"])
                .arg(self.data())
                .args(["-l"])
                .arg(self.dir.path().join("log"))
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        );
    }

    pub fn stop_server(&self, mode: &str) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with psql and returns its unaligned output.
    pub fn sql(&self, database: &str, query: &str) -> String {
        run(
            Command::new(self.bin.join("psql")).args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(database),
                "-c",
                query,
            ]),
            "psql",
        )
        .trim()
        .to_string()
    }

    pub fn create_database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server("immediate");
    }
}

pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

static MARIADB_TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();

impl MariaDb {
    pub fn start() -> MariaDb {
        let install = Path::new("/usr/bin/mariadb-install-db");
        assert!(
            install.exists() && Path::new("/usr/sbin/mariadbd").exists(),
            "MariaDB server binaries not found: run ./scripts/test.sh, or `apt-get install mariadb-server`"
        );
        let template = MARIADB_TEMPLATE.get_or_init(|| {
            let dir = open_tempdir();
            let data = dir.path().join("data");
            std::fs::create_dir(&data).expect("mkdir");
            chown_to_server_user(&data);
            run(
                as_server_user(install)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
                "mariadb-install-db",
            );
            dir
        });
        let dir = copy_of(template.path());
        let port = free_port();
        let mut db = MariaDb { dir, port, child: None };
        db.start_server();
        db.root_sql("CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON *.* TO 'app'@'%'; FLUSH PRIVILEGES;");
        db
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysql.sock")
    }

    pub fn start_server(&mut self) {
        let child = as_server_user(Path::new("/usr/sbin/mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.path().join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--pid-file={}", self.dir.path().join("mariadb.pid").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=200",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.path().join("log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() || !self.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn root_sql(&self, query: &str) -> String {
        run(
            Command::new("mariadb")
                .args(["--no-defaults", "-uroot", "-N", "-B"])
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-e", query]),
            "mariadb",
        )
        .trim()
        .to_string()
    }

    pub fn sql(&self, database: &str, query: &str) -> String {
        self.root_sql(&format!("USE {database}; {query}"))
    }

    pub fn create_database(&self, name: &str) -> String {
        self.root_sql(&format!("CREATE DATABASE {name}"));
        format!("mysql://app:app-pw@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// PgBouncer (Debian's) in front of `pg`, in `pool_mode` (transaction or
/// session), on a free port; it refuses to run as root, so it runs as nobody.
pub struct PgBouncer {
    dir: tempfile::TempDir,
    pub port: u16,
    child: std::process::Child,
}

impl PgBouncer {
    pub fn start(pg: &Postgres, database: &str, pool_mode: &str) -> PgBouncer {
        let program = Path::new("/usr/sbin/pgbouncer");
        assert!(
            program.exists(),
            "pgbouncer not found: run ./scripts/test.sh, or `apt-get install pgbouncer`"
        );
        let dir = open_tempdir();
        let port = free_port();
        std::fs::write(dir.path().join("userlist.txt"), "\"postgres\" \"\"\n").expect("userlist");
        let ini = format!(
            "[databases]\n{database} = host=127.0.0.1 port={pg_port} dbname={database}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\n\
             auth_file = {dir}/userlist.txt\npool_mode = {pool_mode}\ndefault_pool_size = 20\n\
             logfile = {dir}/pgbouncer.log\n",
            pg_port = pg.port,
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).expect("pgbouncer.ini");
        chown_to_server_user(dir.path());
        let child = as_server_user(program)
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {}",
                std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PgBouncer { dir, port, child }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
