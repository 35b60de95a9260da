//! The release artifact (`scripts/build-static.sh`) as PID 1 of an image that
//! holds nothing else: no libc, no loader, no /usr, no /tmp, no nsswitch.conf —
//! the scratch / distroless / Alpine case. Only busybox-static (for `sh`), a
//! minimal /etc, the app's config and SQL migrations.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::db::Postgres;
use crate::support::{http, secs, wait_health, Test};

/// The static binary of the current sources: `scripts/build-static.sh` builds
/// it (incrementally, in its own target folder) and prints its path. Built
/// once per test run.
fn static_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-static.sh");
            let output = Command::new(script).output().expect("run scripts/build-static.sh");
            assert!(
                output.status.success(),
                "scripts/build-static.sh failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

fn busybox() -> PathBuf {
    let path = PathBuf::from("/bin/busybox");
    assert!(path.exists(), "busybox-static is missing (scripts/test.sh installs it)");
    path
}

/// An image with the static binary, busybox as `sh`/`id`/`sleep`, a user
/// `app`, and `db.internal` known only from /etc/hosts.
fn image() -> Test {
    let test = Test::in_root(&static_binary()).env("PATH", "/bin");
    let etc = test.root().join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir etc");
    for (name, text) in [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n",
        ),
        ("group", "root:x:0:\napp:x:1000:\n"),
        ("hosts", "127.0.0.1 localhost\n127.0.0.1 db.internal\n"),
    ] {
        std::fs::write(etc.join(name), text).expect("write /etc file");
    }
    let bin = test.root().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::copy(busybox(), bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "id", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink applet");
    }
    let out = test.root().join("out");
    std::fs::create_dir_all(&out).expect("mkdir out");
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod out");
    test
}

/// What `readelf FLAG BINARY` prints.
fn readelf(flag: &str, binary: &std::path::Path) -> String {
    let output = Command::new("readelf").arg(flag).arg(binary).output().expect("readelf");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_release_binary_links_nothing_at_run_time() {
    let binary = static_binary();
    let headers = readelf("-lW", &binary);
    assert!(
        headers.contains("LOAD"),
        "readelf printed no program headers:\n{headers}"
    );
    assert!(
        !headers.contains("INTERP"),
        "{} asks for a program interpreter:\n{headers}",
        binary.display()
    );
    let dynamic = readelf("-dW", &binary);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "{} needs libraries:\n{dynamic}",
        binary.display()
    );
}

#[test]
fn as_pid1_in_an_empty_image_it_drops_to_a_user_waits_for_a_host_migrates_serves_health_and_stops() {
    let pg = Postgres::start();
    let url = pg.create_database("scratch");
    let port = url
        .rsplit(':')
        .next()
        .and_then(|tail| tail.split('/').next())
        .expect("port");
    let url_by_name = url.replace("127.0.0.1", "db.internal");

    let mut run = image()
        .config(&format!(
            "wait_for = [\"tcp://db.internal:{port}\"]\n\n\
             [migrate]\ndir = \"migrations\"\n\n\
             [process.app]\n\
             command = \"id -u > /out/identity; id -un >> /out/identity; echo serving; exec sleep 1000\"\n\
             user = \"app\"\n"
        ))
        .file(
            "migrations/1_users.sql",
            "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\n",
        )
        .file(
            "migrations/2_seed.sql",
            "INSERT INTO users (email) VALUES ('a@example.com');\n",
        )
        .env("DATABASE_URL", &url_by_name)
        .args(["run"])
        .start();

    // Nothing of the host leaks in: what the binary sees is only the image.
    for absent in ["lib", "lib64", "usr", "etc/nsswitch.conf", "etc/resolv.conf"] {
        assert!(
            !run.dir().parent().expect("root").join(absent).exists(),
            "{absent} in the image"
        );
    }

    run.wait_stderr("started process=app", secs(30));
    run.wait_stdout("app.0 | serving", secs(10));
    let address = run.health_address();
    let health = wait_health(&address, secs(10), "running with migrations applied", |status, json| {
        status == 200 && json["status"] == "ok"
    });
    assert_eq!(health["migrations"]["state"], "applied", "/health: {health}");
    assert_eq!(health["migrations"]["applied"], 2, "/health: {health}");
    assert_eq!(pg.sql("scratch", "SELECT count(*) FROM users"), "1");

    let identity =
        std::fs::read_to_string(run.dir().parent().expect("root").join("out/identity")).expect("identity file");
    assert_eq!(identity, "1000\napp\n", "the process runs as the image's user `app`");

    let (status, _) = http("GET", &address, "/readyz");
    assert_eq!(status, 200);
    run.assert_stops_cleanly(secs(10));
}

/// A Debian or Ubuntu image often says `passwd: files systemd`. A static
/// glibc that followed it would `dlopen` libnss_systemd.so.2, pull the image's
/// libc.so.6 in beside its own and crash: PID 1 died of SIGSEGV on a user that
/// is not in /etc/passwd. It must give the config error instead, and still
/// find the users that /etc/passwd has.
#[test]
fn an_nsswitch_conf_naming_loadable_modules_is_not_followed_into_a_crash() {
    let module = [
        "/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2",
        "/lib/x86_64-linux-gnu/libnss_systemd.so.2",
    ];
    assert!(
        module.iter().any(|path| std::path::Path::new(path).exists()),
        "libnss_systemd.so.2 is missing (scripts/test.sh installs libnss-systemd)"
    );
    let binary = static_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let nsswitch = dir.path().join("nsswitch.conf");
    std::fs::write(
        &nsswitch,
        "passwd: files systemd\ngroup: files systemd\nhosts: files dns\n",
    )
    .expect("write");
    for (user, code, message) in [
        (
            "no-such-user-in-any-file",
            78,
            "user \"no-such-user-in-any-file\" does not exist on this system",
        ),
        ("nobody", 0, "completed process=app"),
    ] {
        std::fs::write(
            dir.path().join("supervisor.toml"),
            format!("[health]\nlisten = \"off\"\n\n[process.app]\ncommand = \"true\"\nuser = \"{user}\"\nrestart = \"never\"\n"),
        )
        .expect("write config");
        // Our own mount namespace, so the host's nsswitch.conf is untouched;
        // `timeout`, so a hang fails the test instead of stalling the suite.
        let output = Command::new("timeout")
            .args([
                "30",
                "unshare",
                "--mount",
                "sh",
                "-c",
                "mount --bind \"$1\" /etc/nsswitch.conf && exec \"$2\" run",
                "sh",
            ])
            .arg(&nsswitch)
            .arg(&binary)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run unshare");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code),
            "user {user}: {:?}\n{stderr}",
            output.status
        );
        assert!(stderr.contains(message), "user {user}: no {message:?} in:\n{stderr}");
    }
}
