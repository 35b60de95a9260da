//! The database URL: which backend, and how to show it without its password.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
}

/// A database URL whose `Display` never shows the password (or the user's
/// query parameters, which may hold one too): `postgres://app@db:5432/app`.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The URL as given, for connecting only.
    raw: String,
    pub backend: Backend,
    shown: String,
    /// Every form in which the password may show up in a driver's message:
    /// as written and percent-decoded, from the userinfo or `?password=`.
    secrets: Vec<String>,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Why a database URL was refused. Never holds any part of the URL: it may carry a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL (expected postgres://… or mysql://…)")]
    NotAUrl,
    #[error("has an unsupported scheme (expected postgres://, postgresql://, mysql:// or mariadb://)")]
    UnsupportedScheme,
    #[error("is not valid UTF-8")]
    NotUtf8,
}

impl DatabaseUrl {
    /// Parses `raw`; the error never contains the URL.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, UrlError> {
        let (scheme, rest) = raw.split_once("://").ok_or(UrlError::NotAUrl)?;
        let backend = match scheme {
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            _ => return Err(UrlError::UnsupportedScheme),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(user), Some(password.to_string())),
                None => (Some(info), None),
            },
            None => (None, None),
        };
        let (database, query) = path.split_once('?').unwrap_or((path, ""));
        let mut secrets = Vec::new();
        let from_query = parameters(query)
            .filter(|(key, _)| *key == "password")
            .map(|(_, value)| value.to_string());
        for written in password.into_iter().chain(from_query) {
            let decoded = percent_encoding::percent_decode_str(&written)
                .decode_utf8_lossy()
                .into_owned();
            secrets.push(written);
            secrets.push(decoded);
        }
        // Longest first, so a decoded form never leaves part of another behind.
        secrets.retain(|secret| secret.len() >= 3);
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        let shown = match user {
            Some(user) => format!("{scheme}://{user}@{host}{database}"),
            None => format!("{scheme}://{host}{database}"),
        };
        // sqlx's MySQL driver only knows `mysql://`.
        let raw = if scheme == "mariadb" {
            format!("mysql://{rest}")
        } else {
            raw.to_string()
        };
        Ok(DatabaseUrl {
            raw,
            backend,
            shown,
            secrets,
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// A query parameter (`?sslrootcert=…`), percent-decoded.
    pub fn parameter(&self, name: &str) -> Option<String> {
        let query = self.raw.split_once('?').map_or("", |(_, query)| query);
        parameters(query).find(|(key, _)| *key == name).map(|(_, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    }

    /// Removes the password from a driver's message, in case it echoed it.
    pub fn scrub(&self, message: &str) -> String {
        self.secrets
            .iter()
            .fold(message.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
    }
}

/// `key=value` pairs of a query string, as written.
fn parameters(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter_map(|pair| pair.split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_no_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cr3t@db:5432/app?sslmode=require&password=x").unwrap();
        assert_eq!(url.to_string(), "postgres://app@db:5432/app");
        assert_eq!(url.backend, Backend::Postgres);
        assert_eq!(url.scrub("failed for s3cr3t"), "failed for ***");
        let url = DatabaseUrl::parse("mariadb://root@127.0.0.1:3306/shop").unwrap();
        assert_eq!(url.backend, Backend::MySql);
        assert!(url.raw().starts_with("mysql://"));
        assert_eq!(DatabaseUrl::parse("redis://x").err(), Some(UrlError::UnsupportedScheme));
        let url =
            DatabaseUrl::parse("postgres://app:p%40ss%2Fw0rd@db/app?sslmode=require&password=q%26r-token").unwrap();
        assert_eq!(url.to_string(), "postgres://app@db/app");
        for leak in ["p%40ss%2Fw0rd", "p@ss/w0rd", "q%26r-token", "q&r-token"] {
            assert_eq!(url.scrub(&format!("auth failed: {leak}")), "auth failed: ***", "{leak}");
        }
        assert_eq!(DatabaseUrl::parse("not a url").err(), Some(UrlError::NotAUrl));
    }
}
