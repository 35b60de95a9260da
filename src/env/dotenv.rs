//! `.env` files → variables (SPEC §3), with our own parser.
//!
//! Why not dotenvy: it expands `$` (generated passwords contain `$`) and its
//! parse error embeds the whole offending line, secret included. Here a bad
//! line is reported as `file:line: reason` and never echoed.
//!
//! Grammar, line by line: blank lines and `#` comments are skipped; an
//! assignment is `[export ]KEY=VALUE` with optional blanks around `=`.
//! VALUE is unquoted (trimmed, ` #` starts a comment), single-quoted
//! (literal), or double-quoted (`\n \r \t \" \\ \$` escapes). Quoted values
//! may span lines. Values are bytes: a non-UTF-8 value is kept as is and
//! only becomes a problem if the schema declares that variable.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// One assignment, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub line: usize,
    pub key: String,
    pub value: OsString,
}

/// A bad line: where, and why; never what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub reason: String,
}

/// Parses a whole file; every bad line is reported, none is applied.
pub fn parse(text: &[u8]) -> Result<Vec<Assignment>, Vec<LineProblem>> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut parser = Parser { text, at: 0, line: 1 };
    let mut assignments: Vec<Assignment> = Vec::new();
    let mut problems = Vec::new();
    while !parser.done() {
        let line = parser.line;
        match parser.statement() {
            Ok(None) => {}
            Ok(Some((key, value))) => {
                if let Some(first) = assignments.iter().find(|a| a.key == key) {
                    problems.push(LineProblem {
                        line,
                        reason: format!("{key} is already set on line {}", first.line),
                    });
                } else {
                    assignments.push(Assignment { line, key, value });
                }
            }
            Err(reason) => {
                problems.push(LineProblem { line, reason });
                parser.skip_line();
            }
        }
    }
    if problems.is_empty() {
        Ok(assignments)
    } else {
        Err(problems)
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// Skips to the start of the next line.
    fn skip_line(&mut self) {
        while let Some(byte) = self.bump() {
            if byte == b'\n' {
                break;
            }
        }
    }

    /// After a value: only blanks or a comment may follow on the line.
    fn end_of_line(&mut self) -> Result<(), String> {
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.bump();
                Ok(())
            }
            Some(b'\r') if self.text.get(self.at + 1) == Some(&b'\n') => {
                self.bump();
                self.bump();
                Ok(())
            }
            Some(b'#') => {
                self.skip_line();
                Ok(())
            }
            Some(_) => Err("unexpected text after the closing quote".to_string()),
        }
    }

    fn statement(&mut self) -> Result<Option<(String, OsString)>, String> {
        self.skip_blanks();
        match self.peek() {
            None => return Ok(None),
            Some(b'\n' | b'\r') | Some(b'#') => {
                self.skip_line();
                return Ok(None);
            }
            _ => {}
        }
        let mut key = self.word();
        if key == "export" && matches!(self.peek(), Some(b' ' | b'\t')) {
            self.skip_blanks();
            key = self.word();
        }
        if key.is_empty() {
            return Err("expected KEY=VALUE".to_string());
        }
        if key.as_bytes()[0].is_ascii_digit() {
            return Err("a variable name cannot start with a digit".to_string());
        }
        self.skip_blanks();
        if self.peek() != Some(b'=') {
            // Never name the word: a line with no `=` is most likely a pasted value.
            return Err(match self.peek() {
                None | Some(b'\n' | b'\r') => "expected KEY=VALUE (this line has no `=`)".to_string(),
                _ => "expected KEY=VALUE (names use letters, digits and `_`)".to_string(),
            });
        }
        self.at += 1;
        self.skip_blanks();
        let value = match self.peek() {
            Some(b'\'') => {
                let value = self.quoted(b'\'')?;
                self.end_of_line()?;
                value
            }
            Some(b'"') => {
                let value = self.quoted(b'"')?;
                self.end_of_line()?;
                value
            }
            _ => self.unquoted(),
        };
        Ok(Some((key, OsString::from_vec(value))))
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    fn unquoted(&mut self) -> Vec<u8> {
        let start = self.at;
        let mut end = self.at;
        while let Some(byte) = self.peek() {
            if byte == b'\n' {
                break;
            }
            if byte == b'#' && self.at > start && matches!(self.text[self.at - 1], b' ' | b'\t') {
                break;
            }
            self.at += 1;
            end = self.at;
        }
        let value = self.text[start..end].trim_ascii_end().to_vec();
        self.skip_line();
        value
    }

    fn quoted(&mut self, quote: u8) -> Result<Vec<u8>, String> {
        let opened_on = self.line;
        self.bump();
        let mut value = Vec::new();
        loop {
            let Some(byte) = self.bump() else {
                return Err(format!("the quote opened on line {opened_on} is never closed"));
            };
            match byte {
                b if b == quote => return Ok(value),
                b'\\' if quote == b'"' => {
                    let Some(escaped) = self.bump() else {
                        return Err(format!("the quote opened on line {opened_on} is never closed"));
                    };
                    match escaped {
                        b'n' => value.push(b'\n'),
                        b'r' => value.push(b'\r'),
                        b't' => value.push(b'\t'),
                        b'"' | b'\\' | b'$' | b'\'' => value.push(escaped),
                        other => {
                            value.push(b'\\');
                            value.push(other);
                        }
                    }
                }
                b'\r' if self.peek() == Some(b'\n') => {}
                other => value.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|a| (a.key, a.value.into_string().unwrap()))
            .collect()
    }

    fn problems(text: &[u8]) -> Vec<(usize, String)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.line, p.reason))
            .collect()
    }

    #[test]
    fn reads_every_value_form() {
        let got = values(
            "# comment\n\nPLAIN=hello world  \nexport EXPORTED=yes\nSPACED = x\nSINGLE='a $b \\n'\nDOUBLE=\"l1\\nl2 \\\"q\\\" \\$x\"\n\
             MULTI=\"one\ntwo\"\nCOMMENTED=value # note\nHASH=a#b\nEMPTY=\nQUOTED_EMPTY=''\nPASSWORD=p$ss$word\nCRLF=v\r\n",
        );
        let want = [
            ("PLAIN", "hello world"),
            ("EXPORTED", "yes"),
            ("SPACED", "x"),
            ("SINGLE", "a $b \\n"),
            ("DOUBLE", "l1\nl2 \"q\" $x"),
            ("MULTI", "one\ntwo"),
            ("COMMENTED", "value"),
            ("HASH", "a#b"),
            ("EMPTY", ""),
            ("QUOTED_EMPTY", ""),
            ("PASSWORD", "p$ss$word"),
            ("CRLF", "v"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn reports_every_bad_line_without_its_text() {
        let got = problems(b"FOO BAR\n=x\n1KEY=x\nOK=1\nOK=2\nK=\"unterminated\nMORE=1\n");
        assert_eq!(
            got,
            [
                (1, "expected KEY=VALUE (names use letters, digits and `_`)".to_string()),
                (2, "expected KEY=VALUE".to_string()),
                (3, "a variable name cannot start with a digit".to_string()),
                (5, "OK is already set on line 4".to_string()),
                (6, "the quote opened on line 6 is never closed".to_string()),
            ]
        );
        let text_free = problems(b"TOKEN='s3cr3t' trailing\n");
        assert_eq!(text_free, [(1, "unexpected text after the closing quote".to_string())]);
        // Found by the dotenv fuzz target: a bare word (a pasted token) was echoed.
        let bare = problems(b"\nghp_s3cr3tTokenPastedAlone\n");
        assert_eq!(bare, [(2, "expected KEY=VALUE (this line has no `=`)".to_string())]);
    }

    #[test]
    fn fuzz_regressions() {
        // Inputs the fuzz target (fuzz/fuzz_targets/dotenv.rs) once failed on.
        let bare_word = include_bytes!("../../tests/fuzz-regressions/dotenv-bare-word-echoed");
        for problem in parse(bare_word).unwrap_err() {
            assert!(!problem.reason.contains("LLL"), "{}", problem.reason);
        }
    }

    #[test]
    fn keeps_non_utf8_values_as_bytes() {
        let parsed = parse(b"BIN=ab\xffcd\n").unwrap();
        assert_eq!(parsed[0].value, OsString::from_vec(b"ab\xffcd".to_vec()));
    }

    #[test]
    fn never_panics_on_any_input() {
        // A cheap property test: every prefix and many random byte strings.
        let sample = b"export A=\"x\\\ny\" # c\r\nB='q\n#\n\xff\xfe=C\n\"\\";
        for end in 0..=sample.len() {
            let _ = parse(&sample[..end]);
        }
        let alphabet = b"AZ_=#'\" \\\n\r\texport$\xff0";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let input: Vec<u8> = (0..len).map(|_| alphabet[rng.usize(0..alphabet.len())]).collect();
            if let Err(problems) = parse(&input) {
                assert!(problems.iter().all(|p| p.line >= 1));
            }
        }
    }
}
