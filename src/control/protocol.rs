//! What `supervisor status|restart|stop|start|signal|logs` send over the
//! control socket and get back: one JSON object per line each way.
//!
//! A request is one line of at most [`MAX_REQUEST`] bytes; anything else
//! (too long, not JSON, an unknown command or field) is refused with a
//! reason and the connection closed. The parser is fuzzed (`fuzz/`).

use serde::{Deserialize, Serialize};

/// The longest request line read; a client that sends more is refused.
pub const MAX_REQUEST: usize = 16 * 1024;
/// The most names one request may carry.
pub const MAX_NAMES: usize = 256;
/// The most recent lines `logs` may ask for.
pub const MAX_LINES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    // A struct variant, so that `deny_unknown_fields` holds for it too.
    Status {},
    Restart {
        names: Vec<String>,
    },
    Stop {
        names: Vec<String>,
    },
    Start {
        names: Vec<String>,
    },
    Signal {
        signal: String,
        names: Vec<String>,
    },
    Logs {
        #[serde(default)]
        names: Vec<String>,
        #[serde(default)]
        follow: bool,
        #[serde(default = "default_lines")]
        lines: usize,
    },
}

fn default_lines() -> usize {
    100
}

/// The answer to every request but a followed `logs`, whose lines come after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// What was done, or why not: shown to the operator as is.
    pub message: String,
    /// For `status`: the same document as `/health`, with each process's uptime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl Reply {
    pub fn done(message: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// Parses one request line (without its newline).
pub fn parse(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    let request: Request = serde_json::from_slice(line).map_err(|err| format!("malformed request: {err}"))?;
    let names = match &request {
        Request::Status {} => &[][..],
        Request::Restart { names }
        | Request::Stop { names }
        | Request::Start { names }
        | Request::Signal { names, .. }
        | Request::Logs { names, .. } => names,
    };
    if names.len() > MAX_NAMES {
        return Err(format!("more than {MAX_NAMES} names"));
    }
    if let Request::Logs { lines, .. } = request {
        if lines > MAX_LINES {
            return Err(format!("at most {MAX_LINES} lines"));
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_command_and_refuses_the_rest() {
        assert_eq!(parse(br#"{"command":"status"}"#), Ok(Request::Status {}));
        assert_eq!(
            parse(br#"{"command":"restart","names":["web","api.1"]}"#),
            Ok(Request::Restart {
                names: vec!["web".into(), "api.1".into()]
            })
        );
        assert_eq!(
            parse(br#"{"command":"logs"}"#),
            Ok(Request::Logs {
                names: vec![],
                follow: false,
                lines: 100
            })
        );
        for bad in [
            &br#"{"command":"reboot"}"#[..],
            br#"{"command":"status","x":1}"#,
            br#"{"command":"stop"}"#,
            b"not json",
            b"",
            br#"{"command":"logs","lines":1000000}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = format!(r#"{{"command":"stop","names":["{}"]}}"#, "x".repeat(MAX_REQUEST));
        assert!(parse(long.as_bytes()).unwrap_err().contains("longer than"));
        let serialized = serde_json::to_string(&Request::Signal {
            signal: "HUP".into(),
            names: vec!["web".into()],
        })
        .unwrap();
        assert_eq!(serialized, r#"{"command":"signal","signal":"HUP","names":["web"]}"#);
    }
}
