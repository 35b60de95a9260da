//! The `Procfile` fallback: every `name: command` line is a process (SPEC §1).
//!
//! Problems are collected per line as `Procfile:3: reason`, the way ripgrep
//! reports its config file. A line's text is never echoed: people paste
//! tokens into Procfiles too.

/// One `name: command` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub name: String,
    pub command: String,
}

/// Parses a Procfile; `Err` holds `(line, reason)` for every bad line.
pub fn parse(text: &str) -> Result<Vec<Entry>, Vec<(usize, String)>> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            problems.push((line, "expected `name: command`".to_string()));
            continue;
        };
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            problems.push((
                line,
                "a process name may only use letters, digits, `_` and `-`".to_string(),
            ));
        } else if command.is_empty() {
            problems.push((line, format!("process {name} has an empty command")));
        } else if let Some(first) = entries.iter().find(|e| e.name == name) {
            problems.push((
                line,
                format!("process {name} is already defined on line {}", first.line),
            ));
        } else {
            entries.push(Entry {
                line,
                name: name.to_string(),
                command: command.to_string(),
            });
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_skips_comments() {
        let text = "# dev\nweb: python3 -m http.server $PORT\n\nworker:   node worker.js --queue=a:b\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "web");
        assert_eq!(entries[0].command, "python3 -m http.server $PORT");
        assert_eq!(entries[1].command, "node worker.js --queue=a:b");
        assert_eq!(entries[1].line, 4);
    }

    #[test]
    fn reports_every_bad_line() {
        let problems = parse("web: a\nno colon here\nbad name!: x\nweb: b\nempty:\n").unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(problems[2].1.contains("already defined on line 1"));
    }
}
