//! What `fingerprint` and `watch` patterns share: globs relative to the
//! config's folder, and the folder each one starts in.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A pattern globset refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    pub source: globset::Error,
}

/// One set matching any of `patterns`.
pub fn set(patterns: &[String]) -> Result<GlobSet, PatternError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern).map_err(|source| PatternError {
            pattern: pattern.clone(),
            source,
        })?);
    }
    builder.build().map_err(|source| PatternError {
        pattern: patterns.join(", "),
        source,
    })
}

/// The folder a pattern starts in, before its first wildcard: only that
/// subtree is walked or watched (never the whole repository and its
/// node_modules). `src/**` → `src`; `*.js` and `server.js` → `` (the base).
pub fn literal_prefix(pattern: &str) -> PathBuf {
    let mut prefix = PathBuf::new();
    let components: Vec<Component> = Path::new(pattern).components().collect();
    for (index, component) in components.iter().enumerate() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) || index + 1 == components.len() {
            break;
        }
        prefix.push(component);
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_before_the_first_wildcard() {
        assert_eq!(literal_prefix("apps/api/src/**"), PathBuf::from("apps/api/src"));
        assert_eq!(literal_prefix("prisma/schema.prisma"), PathBuf::from("prisma"));
        assert_eq!(literal_prefix("*.js"), PathBuf::new());
        assert_eq!(literal_prefix("src/{a,b}/x"), PathBuf::from("src"));
        assert_eq!(literal_prefix("**/*.sql"), PathBuf::new());
    }
}
