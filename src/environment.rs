//! The variables a child gets, as one type: the process environment plus
//! dotenv files and schema defaults (built in `env`), then each process's or
//! task's own `env` on top. Names and values are `OsString`: the kernel's
//! environment is bytes, and a value that is not UTF-8 must still pass
//! through untouched to the children that never asked for it as text.
//!
//! This module depends on nothing else of ours, so `config` (templates that
//! read variables) and `env` (which builds them) both use it without using
//! each other.

use std::ffi::{OsStr, OsString};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// In insertion order; `set` keeps one entry per name.
    vars: Vec<(OsString, OsString)>,
}

impl Environment {
    /// Our own process's environment, as inherited.
    pub fn inherited() -> Environment {
        std::env::vars_os().collect()
    }

    /// The value of `name` (the last one wins, as in `execve`).
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_os_str())
    }

    /// `name`'s value as text, when it is set, non-empty and UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str).filter(|value| !value.is_empty())
    }

    pub fn contains(&self, name: &OsStr) -> bool {
        self.vars.iter().any(|(key, _)| key == name)
    }

    /// Sets `name`, replacing any earlier value.
    pub fn set(&mut self, name: &str, value: impl Into<OsString>) {
        self.vars.retain(|(key, _)| key != name);
        self.vars.push((name.into(), value.into()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(key, value)| (key.as_os_str(), value.as_os_str()))
    }
}

impl FromIterator<(OsString, OsString)> for Environment {
    fn from_iter<I: IntoIterator<Item = (OsString, OsString)>>(pairs: I) -> Environment {
        let mut environment = Environment::default();
        environment.vars.extend(pairs);
        environment
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Environment {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Environment {
        pairs
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_wins_and_set_replaces() {
        let mut env: Environment = [("A", "1"), ("B", ""), ("A", "2")].into_iter().collect();
        assert_eq!(env.get("A"), Some(OsStr::new("2")));
        assert_eq!(env.text("B"), None, "empty is not text");
        assert_eq!(env.get("B"), Some(OsStr::new("")));
        env.set("A", "3");
        assert_eq!(env.iter().filter(|(k, _)| *k == "A").count(), 1);
        assert_eq!(env.text("A"), Some("3"));
        assert!(!env.contains(OsStr::new("C")));
    }
}
