//! A hash of the migration command and the files it applies, so an
//! unchanged tool run (`npx prisma migrate deploy` with the same
//! `prisma/migrations/**`) is skipped without even taking the lock.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error(transparent)]
    Pattern(#[from] crate::globs::PatternError),
    #[error("{0}")]
    Walk(#[from] walkdir::Error),
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{pattern:?} matches no file under {}: a typo here would skip every future migration", base.display())]
    NoMatch { pattern: String, base: PathBuf },
}

/// SHA-256 over the command and the sorted (path, content hash) pairs of
/// every file under `base` matching one of `patterns`. A pattern that matches
/// no file is refused: with a typo there (`prisma/migration/**`) the hash
/// would never change again and every later migration would be skipped.
pub fn compute(command: &str, patterns: &[String], base: &Path) -> Result<String, FingerprintError> {
    let set = crate::globs::set(patterns)?;
    let mut files: Vec<(String, String)> = Vec::new();
    let mut matched = vec![false; patterns.len()];
    for root in patterns.iter().map(|p| crate::globs::literal_prefix(p)) {
        let start = base.join(&root);
        if !start.exists() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&start).follow_links(false) {
            let entry = entry?;
            if !entry.file_type().is_file() {
                continue;
            }
            let relative = entry.path().strip_prefix(base).unwrap_or(entry.path());
            let shown = relative.to_string_lossy().replace('\\', "/");
            let hits = set.matches(relative);
            for &index in &hits {
                matched[index] = true;
            }
            if !hits.is_empty() && !files.iter().any(|(path, _)| *path == shown) {
                let content = std::fs::read(entry.path()).map_err(|source| FingerprintError::Read {
                    path: shown.clone(),
                    source,
                })?;
                files.push((shown, hex::encode(Sha256::digest(&content))));
            }
        }
    }
    if let Some(index) = matched.iter().position(|m| !m) {
        return Err(FingerprintError::NoMatch {
            pattern: patterns[index].clone(),
            base: base.to_path_buf(),
        });
    }
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"supervisor-fingerprint-v1\0");
    hasher.update(command.as_bytes());
    for (path, digest) in &files {
        hasher.update(b"\0");
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(digest.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_matching_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("prisma/migrations/1_init")).unwrap();
        std::fs::write(base.join("prisma/migrations/1_init/migration.sql"), "create table a();").unwrap();
        std::fs::write(base.join("prisma/schema.prisma"), "model A {}").unwrap();
        let patterns = vec!["prisma/migrations/**".to_string(), "prisma/schema.prisma".to_string()];
        let first = compute("npx prisma migrate deploy", &patterns, base).unwrap();
        assert_eq!(first, compute("npx prisma migrate deploy", &patterns, base).unwrap());
        std::fs::write(base.join("README.md"), "unrelated").unwrap();
        assert_eq!(first, compute("npx prisma migrate deploy", &patterns, base).unwrap());
        std::fs::create_dir_all(base.join("prisma/migrations/2_more")).unwrap();
        std::fs::write(base.join("prisma/migrations/2_more/migration.sql"), "create table b();").unwrap();
        let second = compute("npx prisma migrate deploy", &patterns, base).unwrap();
        assert_ne!(first, second);
        assert_ne!(
            second,
            compute("npx prisma migrate deploy --x", &patterns, base).unwrap()
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prisma/migrations")).unwrap();
        std::fs::write(dir.path().join("prisma/migrations/1.sql"), "x").unwrap();
        let patterns = vec!["prisma/migrations/**".to_string(), "prisma/migration/**".to_string()];
        let error = compute("npx prisma migrate deploy", &patterns, dir.path()).unwrap_err();
        assert!(
            error.to_string().starts_with("\"prisma/migration/**\" matches no file"),
            "{error}"
        );
    }
}
