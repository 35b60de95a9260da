//! `Report`: what is wrong with the environment, sorted by variable, as text
//! or JSON. It holds variable names and rule descriptions only: there is no
//! field a value could leak through.

use serde::Serialize;

/// Where the context came from, for the report's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    Flag,
    Setting,
    Variable(String),
    SchemaDefault,
    Fallback,
}

impl std::fmt::Display for ContextSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextSource::Flag => f.write_str("--context"),
            ContextSource::Setting => f.write_str("SUPERVISOR_CONTEXT"),
            ContextSource::Variable(name) => f.write_str(name),
            ContextSource::SchemaDefault => f.write_str("the schema default"),
            ContextSource::Fallback => f.write_str("the fail-safe default"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub variable: String,
    pub message: String,
    pub secret: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)?;
        if self.secret {
            f.write_str(" [secret]")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub context: String,
    pub context_source: ContextSource,
    /// Declared variables that were checked.
    pub checked: usize,
    /// Sorted by variable, then message.
    pub problems: Vec<Problem>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    context: &'a str,
    context_source: String,
    checked: usize,
    problems: &'a [Problem],
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line per problem, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for problem in &self.problems {
            out.push_str(&problem.to_string());
            out.push('\n');
        }
        if self.is_ok() {
            out.push_str(&format!(
                "environment ok: {} variable(s) checked in context \"{}\" (from {})\n",
                self.checked, self.context, self.context_source
            ));
        } else {
            out.push_str(&format!(
                "environment invalid: {} problem(s) in context \"{}\" (from {}); values are never shown\n",
                self.problems.len(),
                self.context,
                self.context_source
            ));
        }
        out
    }

    pub fn json(&self) -> String {
        let report = JsonReport {
            ok: self.is_ok(),
            context: &self.context,
            context_source: self.context_source.to_string(),
            checked: self.checked,
            problems: &self.problems,
        };
        serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".to_string()) + "\n"
    }
}
