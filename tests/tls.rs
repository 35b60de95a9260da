//! SPEC §4: TLS to Postgres follows libpq's `sslmode`, against a real server
//! that accepts TCP clients over TLS only, with certificates made here by
//! openssl. Certificate problems fail at once and name the file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::db::Postgres;
use crate::support::Test;

/// A CA, a server certificate it signed for `db.internal` only, another CA,
/// and a self-signed server certificate for 127.0.0.1.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Certificates {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = r#"set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
key ca.key; openssl req -x509 -new -key ca.key -out ca.crt -subj /CN=test-ca -days 2
key other-ca.key; openssl req -x509 -new -key other-ca.key -out other-ca.crt -subj /CN=other-ca -days 2
key server.key; openssl req -new -key server.key -out server.csr -subj /CN=db.internal
printf 'subjectAltName=DNS:db.internal\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
key self.key; openssl req -x509 -new -key self.key -out self.crt -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 2
"#;
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .status()
            .expect("openssl not found: run ./scripts/test.sh, or `apt-get install openssl`");
        assert!(status.success(), "making certificates failed");
        Certificates { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn migrate(url: &str) -> Test {
    Test::new()
        .config("[migrate]\ndir = \"migrations\"\nconnect_timeout = \"30s\"\n\n[process.app]\ncommand = \"true\"\n")
        .file("migrations/1_t.sql", "CREATE TABLE t (id int);\n")
        .env("DATABASE_URL", url)
        .args(["migrate"])
}

fn url(pg: &Postgres, query: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/app?{query}", pg.port)
}

/// A failure that must come at once, not after `connect_timeout` of retries.
fn fails_at_once(test: Test, code: i32, needles: &[&str]) {
    let started = Instant::now();
    let finished = test.run();
    finished.assert_code(code);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: retried a certificate problem\n{}",
        started.elapsed(),
        finished.stderr
    );
    for needle in needles {
        assert!(
            finished.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            finished.stderr
        );
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn sslmodes_follow_libpq_against_a_ca_signed_certificate() {
    let certs = Certificates::make();
    let pg = Postgres::start_tls(&certs.path("server.crt"), &certs.path("server.key"));
    pg.create_database("app");
    let ca = shown(&certs.path("ca.crt"));
    // verify-ca checks the chain, not the name (the certificate is for db.internal).
    migrate(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={ca}")))
        .run()
        .assert_code(0);
    assert_eq!(pg.sql("app", "SELECT count(*) FROM _supervisor_migrations"), "1");
    // verify-full checks the name too: refused at once, naming the file.
    fails_at_once(
        migrate(&url(&pg, &format!("sslmode=verify-full&sslrootcert={ca}"))),
        69,
        &["certificate was refused", "not valid for name \"127.0.0.1\"", &ca],
    );
    // Another CA: refused at once.
    let other = shown(&certs.path("other-ca.crt"));
    fails_at_once(
        migrate(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={other}"))),
        69,
        &["certificate was refused", &other],
    );
    // A missing root certificate is named; verify modes need one.
    let missing = shown(&certs.path("nope.crt"));
    fails_at_once(
        migrate(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={missing}"))),
        78,
        &["sslrootcert", &missing, "does not exist"],
    );
    fails_at_once(migrate(&url(&pg, "sslmode=verify-full")), 78, &["needs sslrootcert"]);
    // require with a root certificate verifies the chain, as libpq does.
    fails_at_once(
        migrate(&url(&pg, &format!("sslmode=require&sslrootcert={other}"))),
        69,
        &["certificate was refused"],
    );
    // require, prefer and allow without one: encrypted, not verified.
    for mode in ["require", "prefer", "allow"] {
        migrate(&url(&pg, &format!("sslmode={mode}"))).run().assert_code(0);
    }
    // disable: the server turns plain clients away, and that is final.
    fails_at_once(migrate(&url(&pg, "sslmode=disable")), 69, &["no encryption"]);
}

#[test]
fn a_self_signed_server_certificate_given_as_sslrootcert_is_trusted() {
    let certs = Certificates::make();
    let pg = Postgres::start_tls(&certs.path("self.crt"), &certs.path("self.key"));
    pg.create_database("app");
    let pinned = shown(&certs.path("self.crt"));
    migrate(&url(&pg, &format!("sslmode=verify-full&sslrootcert={pinned}")))
        .run()
        .assert_code(0);
    assert_eq!(pg.sql("app", "SELECT count(*) FROM _supervisor_migrations"), "1");
    let other = shown(&certs.path("ca.crt"));
    fails_at_once(
        migrate(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={other}"))),
        69,
        &["certificate was refused"],
    );
}
