//! Real migration tools from npm (knex, node-pg-migrate; drizzle-orm is in
//! the compose-stack example), locked in tests/fixtures/node-tools: eight
//! replicas started at once fail without supervisor, and with `supervisor
//! migrate` the migrations are applied exactly once and every replica exits 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::db::Postgres;
use crate::support::{secs, Running, Test};

const REPLICAS: usize = 8;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node-tools")
}

struct Tool {
    /// Folder under the fixture holding the tool's project files.
    project: &'static str,
    /// The tool's command, run in a copy of the project folder.
    command: fn(&Path) -> Vec<String>,
    /// The tool's history table, and the table the slow migration fills once.
    history: &'static str,
    table: &'static str,
}

const KNEX: Tool = Tool {
    project: "knex",
    command: |bin| vec![bin.join("knex").display().to_string(), "migrate:latest".into()],
    history: "knex_migrations",
    table: "users",
};

const NODE_PG_MIGRATE: Tool = Tool {
    project: "pgm",
    command: |bin| {
        vec![
            bin.join("node-pg-migrate").display().to_string(),
            "up".into(),
            "-m".into(),
            "migrations".into(),
        ]
    },
    history: "pgmigrations",
    table: "accounts",
};

/// The project's files, as (relative path, contents).
fn project_files(tool: &Tool) -> Vec<(String, String)> {
    let root = fixture().join(tool.project);
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(&root).expect("inside").display().to_string();
                files.push((relative, std::fs::read_to_string(&path).expect("read fixture")));
            }
        }
    }
    files
}

fn bin() -> PathBuf {
    let bin = fixture().join("node_modules/.bin");
    assert!(
        bin.join("knex").exists(),
        "the fixture's npm packages are missing: run ./scripts/test.sh (it runs npm ci in tests/fixtures/node-tools)"
    );
    bin
}

/// A replica's folder: the project's files, and the fixture's packages.
fn checkout(tool: &Tool, dir: &Path) {
    for (name, text) in project_files(tool) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let _ = std::os::unix::fs::symlink(fixture().join("node_modules"), dir.join("node_modules"));
}

/// Without supervisor: the tool itself, `replicas` times at once; how many failed.
fn race_without_supervisor(tool: &Tool, url: &str, replicas: usize) -> usize {
    let dirs: Vec<tempfile::TempDir> = (0..replicas).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let command = (tool.command)(&bin());
    let children: Vec<_> = dirs
        .iter()
        .map(|dir| {
            checkout(tool, dir.path());
            Command::new(&command[0])
                .args(&command[1..])
                .current_dir(dir.path())
                .env("DATABASE_URL", url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the tool")
        })
        .collect();
    children
        .into_iter()
        .map(|mut child| child.wait().expect("wait"))
        .filter(|status| !status.success())
        .count()
}

fn race_with_supervisor(tool: &Tool, url: &str) {
    let command: Vec<String> = (tool.command)(&bin()).iter().map(|word| format!("{word:?}")).collect();
    let config = format!(
        "[migrate]\ncommand = [{}]\nfingerprint = [\"migrations/**\"]\n\n[process.app]\ncommand = \"true\"\n",
        command.join(", ")
    );
    let mut replicas: Vec<Running> = (0..REPLICAS)
        .map(|_| {
            let test = Test::new().config(&config).env("DATABASE_URL", url).args(["migrate"]);
            checkout(tool, &test.path());
            test.start()
        })
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(120)), 0, "{}", replica.stderr.text());
    }
}

fn race(tool: &Tool) {
    let pg = Postgres::start();
    // The control: one replica alone succeeds, so failures below are the race's.
    let alone = pg.create_database("alone");
    assert_eq!(
        race_without_supervisor(tool, &alone, 1),
        0,
        "{}: the tool fails even alone",
        tool.project
    );
    let bare = pg.create_database("bare");
    let failed = race_without_supervisor(tool, &bare, REPLICAS);
    assert!(
        failed >= 1,
        "{}: all {REPLICAS} bare replicas succeeded: the race did not happen",
        tool.project
    );
    eprintln!(
        "{}: without supervisor, {failed} of {REPLICAS} replicas failed",
        tool.project
    );

    let url = pg.create_database("app");
    race_with_supervisor(tool, &url);
    assert_eq!(pg.sql("app", &format!("SELECT count(*) FROM {}", tool.history)), "2");
    assert_eq!(
        pg.sql("app", &format!("SELECT count(*) FROM {}", tool.table)),
        "1",
        "the slow data migration ran more than once"
    );
}

#[test]
fn knex_replicas_race_without_supervisor_and_migrate_once_with_it() {
    race(&KNEX);
}

#[test]
fn node_pg_migrate_replicas_race_without_supervisor_and_migrate_once_with_it() {
    race(&NODE_PG_MIGRATE);
}
