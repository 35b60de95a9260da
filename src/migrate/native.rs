//! Plain-SQL migrations: `<version>_<name>.sql` files in `[migrate].dir`.
//!
//! Applied in version order, each with its history row in one transaction
//! unless its first line is `-- supervisor:no-transaction` (for statements
//! such as `CREATE INDEX CONCURRENTLY`, one per file). A file whose
//! checksum no longer matches its history row is refused; a recorded
//! version missing from the folder (an older image during a rolling deploy)
//! is only a warning.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::MigrateError;

pub const NO_TRANSACTION: &str = "-- supervisor:no-transaction";

/// One applied migration, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    /// The file name without `.sql`, as recorded: `20240101_create_users`.
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    /// SHA-256 of the file's bytes, hex.
    pub checksum: String,
    pub no_transaction: bool,
}

/// Reads every migration in `dir`, sorted by version.
pub fn load(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let bad = |path: &Path, reason: String| MigrateError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let entries =
        std::fs::read_dir(dir).map_err(|err| bad(dir, format!("cannot read the migrations folder: {err}")))?;
    let mut migrations: Vec<Migration> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| bad(dir, err.to_string()))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        let (version, _) = stem
            .split_once('_')
            .ok_or_else(|| bad(&path, "expected <version>_<name>.sql".to_string()))?;
        let version: i64 = version
            .parse()
            .map_err(|_| bad(&path, "the version before `_` must be a whole number".to_string()))?;
        let bytes = std::fs::read(&path).map_err(|err| bad(&path, err.to_string()))?;
        let sql = String::from_utf8(bytes.clone()).map_err(|_| bad(&path, "is not valid UTF-8".to_string()))?;
        if let Some(other) = migrations.iter().find(|m| m.version == version) {
            return Err(bad(
                &path,
                format!("version {version} is also used by {}", other.path.display()),
            ));
        }
        migrations.push(Migration {
            version,
            name: stem.to_string(),
            no_transaction: sql.lines().next().is_some_and(|line| line.trim() == NO_TRANSACTION),
            checksum: hex::encode(Sha256::digest(&bytes)),
            path,
            sql,
        });
    }
    migrations.sort_by_key(|m| m.version);
    Ok(migrations)
}

/// Checks the history against the files and returns what is pending.
pub fn pending<'a>(migrations: &'a [Migration], applied: &[Applied]) -> Result<Vec<&'a Migration>, MigrateError> {
    for row in applied {
        match migrations.iter().find(|m| m.version == row.version) {
            Some(migration) if migration.checksum != row.checksum => {
                let normalized = hex::encode(Sha256::digest(migration.sql.replace("\r\n", "\n").as_bytes()));
                let hint = if normalized == row.checksum {
                    "only its line endings changed (CRLF): add `*.sql text eol=lf` to .gitattributes".to_string()
                } else {
                    "never edit an applied migration; add a new one (check line endings and editors that reformat)"
                        .to_string()
                };
                return Err(MigrateError::Changed {
                    path: migration.path.clone(),
                    version: row.version,
                    hint,
                });
            }
            Some(_) => {}
            None => tracing::warn!(
                version = row.version,
                name = %row.name,
                "an applied migration is not in this image (an older image during a rolling deploy?)"
            ),
        }
    }
    Ok(migrations
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn applied(m: &Migration) -> Applied {
        Applied {
            version: m.version,
            name: m.name.clone(),
            checksum: m.checksum.clone(),
            applied_at: String::new(),
        }
    }

    #[test]
    fn loads_in_version_order_and_reads_the_marker() {
        let d = dir(&[
            ("10_b.sql", "select 1;"),
            (
                "2_a.sql",
                "-- supervisor:no-transaction\ncreate index concurrently x on t (a);",
            ),
            ("README.md", "not a migration"),
        ]);
        let migrations = load(d.path()).unwrap();
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["2_a", "10_b"]);
        assert!(migrations[0].no_transaction);
        assert!(!migrations[1].no_transaction);
    }

    #[test]
    fn refuses_bad_names_and_duplicate_versions() {
        assert!(matches!(
            load(dir(&[("init.sql", "")]).path()),
            Err(MigrateError::BadFile { .. })
        ));
        assert!(matches!(
            load(dir(&[("x_init.sql", "")]).path()),
            Err(MigrateError::BadFile { .. })
        ));
        assert!(matches!(
            load(dir(&[("1_a.sql", ""), ("01_b.sql", "")]).path()),
            Err(MigrateError::BadFile { .. })
        ));
    }

    #[test]
    fn pending_skips_applied_and_refuses_changed_files() {
        let d = dir(&[("1_a.sql", "select 1;\n"), ("2_b.sql", "select 2;\n")]);
        let migrations = load(d.path()).unwrap();
        let history = vec![applied(&migrations[0])];
        let todo = pending(&migrations, &history).unwrap();
        assert_eq!(todo.len(), 1);
        assert_eq!(todo[0].version, 2);
        // Same text with CRLF endings: refused, with the line-ending hint.
        std::fs::write(d.path().join("1_a.sql"), "select 1;\r\n").unwrap();
        let changed = load(d.path()).unwrap();
        match pending(&changed, &history) {
            Err(MigrateError::Changed { version: 1, hint, .. }) => assert!(hint.contains("line endings"), "{hint}"),
            other => panic!("{other:?}"),
        }
        // A recorded version missing from the folder is only a warning.
        let mut extra = history.clone();
        extra.push(Applied {
            version: 99,
            name: "99_gone".into(),
            checksum: "x".into(),
            applied_at: String::new(),
        });
        assert_eq!(pending(&migrations, &extra).unwrap().len(), 1);
    }
}
