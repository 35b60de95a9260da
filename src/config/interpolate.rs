//! `${VAR}` and `${VAR:-default}` in config values (SPEC §2).
//!
//! Templates are parsed when the config is loaded, so a syntax error is a
//! config error with a line, and expanded once the environment is known.
//! `$$` is a literal `$`; a `$` not followed by `{` or `$` is kept as is,
//! so values such as `price$` need no escaping. An unset `${VAR}` with no
//! default is an error rather than an empty string: a silently empty port or
//! path is the bug this tool exists to prevent.

use crate::environment::Environment;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var { name: String, default: Option<String> },
}

/// A config string with `${…}` references, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated `${{` (expected `}}`)")]
    Unterminated,
    #[error("`${{}}` needs a variable name")]
    EmptyName,
    #[error("invalid variable name in `${{…}}` (letters, digits and `_` only)")]
    BadName,
    #[error("variable {0} is not set (use ${{{0}:-default}} for an optional value)")]
    Unset(String),
    #[error("variable {0} is not valid UTF-8")]
    NotUnicode(String),
}

impl Template {
    pub fn parse(input: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = input;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                text.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or(TemplateError::Unterminated)?;
                let inner = &body[..end];
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default.to_string())),
                    None => (inner, None),
                };
                if name.is_empty() {
                    return Err(TemplateError::EmptyName);
                }
                if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(TemplateError::BadName);
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var {
                    name: name.to_string(),
                    default,
                });
                rest = &body[end + 1..];
            } else {
                text.push('$');
                rest = after;
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// True when the text has no `${…}` reference, so it can be checked before the environment exists.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|piece| matches!(piece, Piece::Text(_)))
    }

    /// Expands against `env` (the last setting of a name wins, as everywhere
    /// we carry an environment). An empty value counts as unset, as in the shell's `:-`.
    pub fn expand(&self, env: &Environment) -> Result<String, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var { name, default } => {
                    let value = env.get(name).filter(|v| !v.is_empty());
                    match (value, default) {
                        (Some(value), _) => {
                            out.push_str(value.to_str().ok_or_else(|| TemplateError::NotUnicode(name.clone()))?)
                        }
                        (None, Some(default)) => out.push_str(default),
                        (None, None) => return Err(TemplateError::Unset(name.clone())),
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    #[test]
    fn expands_references_defaults_and_escapes() {
        let vars = env(&[("PORT", "4001"), ("EMPTY", "")]);
        let cases = [
            ("plain", "plain"),
            ("${PORT}", "4001"),
            ("http://x:${PORT}/", "http://x:4001/"),
            ("${MISSING:-7}", "7"),
            ("${EMPTY:-d}", "d"),
            ("${PORT:-9}", "4001"),
            ("a$$b", "a$b"),
            ("cost$", "cost$"),
            ("p$ss", "p$ss"),
            ("${MISSING:-}", ""),
        ];
        for (input, want) in cases {
            let got = Template::parse(input).unwrap().expand(&vars).unwrap();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_templates_and_unset_variables() {
        assert_eq!(Template::parse("${PORT"), Err(TemplateError::Unterminated));
        assert_eq!(Template::parse("${}"), Err(TemplateError::EmptyName));
        assert_eq!(Template::parse("${A B}"), Err(TemplateError::BadName));
        let err = Template::parse("${NOPE}").unwrap().expand(&env(&[])).unwrap_err();
        assert_eq!(err, TemplateError::Unset("NOPE".into()));
    }
}
